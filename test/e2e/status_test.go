package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// clusterStatus: `k4t status` on the healthy HA cluster says healthy in
// every format, and exits 0.
func (e *env) clusterStatus(t *testing.T) {
	r := e.k4t("status", "-f", e.inv)
	var rep struct {
		Verdict string
		Healthy bool
		Hosts   []struct {
			Name      string
			Reachable bool
			Units     map[string]string
			HoldsVIP  bool
			Readyz    string
			Node      *struct{ Ready bool }
		}
		Leases map[string]string
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status -o json: exit %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	if r.code != 0 || !rep.Healthy {
		t.Errorf("status: exit %d, verdict %q", r.code, rep.Verdict)
	}
	holders := 0
	for _, h := range rep.Hosts {
		if !h.Reachable {
			t.Errorf("%s unreachable", h.Name)
		}
		if h.HoldsVIP {
			holders++
		}
		if strings.HasPrefix(h.Name, "master") && (h.Readyz != "ok" || h.Node == nil || !h.Node.Ready || h.Units["etcd"] != "active") {
			t.Errorf("%s: readyz %q node %v units %v", h.Name, h.Readyz, h.Node, h.Units)
		}
	}
	if holders != 1 || rep.Leases["kube-scheduler"] == "" {
		t.Errorf("%d VIP holder(s), leases %v", holders, rep.Leases)
	}
	prom := e.k4t("status", "-o", "prometheus", "-f", e.inv)
	mustContain(t, "status -o prometheus", prom.stdout, `k4t_cluster_healthy{cluster="lab"} 1`, `k4t_etcd_member_healthy{cluster="lab",host="master2"} 1`, "# TYPE k4t_host_up gauge")
	text := e.k4t("status", "-o", "text", "-f", e.inv)
	mustContain(t, "status", text.stdout, "lab — healthy", "masters", "workers")
	t.Logf("\n%s", text.stdout)
	fmt.Printf("FIGURE status-7-hosts: %s (json run), %s (text run)\n", r.duration.Round(time.Millisecond), text.duration.Round(time.Millisecond))
}

// statusDegraded: with a host stopped, status names it and exits 1.
func (e *env) statusDegraded(t *testing.T, stopped string) {
	r := e.k4t("status", "-o", "text", "-f", e.inv)
	if r.code != 1 {
		t.Errorf("status with %s stopped: exit %d, want 1\n%s", stopped, r.code, r.stdout)
	}
	mustContain(t, "status with "+stopped+" stopped", r.stdout, "degraded", stopped+" unreachable")
}
