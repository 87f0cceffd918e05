package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(prom.stdout))
	if err != nil {
		t.Errorf("status -o prometheus does not parse with Prometheus' text parser: %v\n%s", err, prom.stdout)
	} else if up := families["k4t_host_up"]; up == nil || len(up.GetMetric()) != len(rep.Hosts) {
		t.Errorf("k4t_host_up: %v, want one sample per host (%d)", up, len(rep.Hosts))
	}
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

// statusReport is what the breaks below read of `k4t status -o json`.
type statusReport struct {
	Verdict  string
	Healthy  bool
	Problems []string
	Hosts    []struct {
		Name      string
		Reachable bool
		HoldsVIP  bool
		Disks     []struct {
			Path        string
			UsedPercent int
		}
	}
}

// statusNames runs status in text and in JSON: both must exit 1 and name
// every want (the JSON among its problems).
func (e *env) statusNames(t *testing.T, brk string, args []string, want ...string) statusReport {
	t.Helper()
	args = append(append([]string{"status", "-f", e.inv}, args...), "-o")
	// The two reads run side by side: status only reads.
	var text, js result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); text = e.k4t(append(slices.Clone(args), "text")...) }()
	js = e.k4t(append(slices.Clone(args), "json")...)
	wg.Wait()
	var rep statusReport
	if err := json.Unmarshal([]byte(js.stdout), &rep); err != nil {
		t.Fatalf("%s: status -o json: exit %d, %v\n%s", brk, js.code, err, js.stderr)
	}
	if text.code != 1 || js.code != 1 || rep.Healthy {
		t.Errorf("%s: status exit %d (text), %d (json), want 1; verdict %q", brk, text.code, js.code, rep.Verdict)
	}
	problems := strings.Join(rep.Problems, "\n")
	for _, w := range want {
		if !strings.Contains(text.stdout, w) || !strings.Contains(problems, w) {
			t.Errorf("%s: status does not name %q\ntext:\n%s\njson problems:\n%s", brk, w, text.stdout, problems)
		}
	}
	fmt.Printf("FIGURE status-%s: %s (text), %s (json): %s\n", strings.ReplaceAll(brk, " ", "-"), text.duration.Round(time.Millisecond), js.duration.Round(time.Millisecond), rep.Verdict)
	return rep
}

// statusBreaks: each break named by status (text and JSON, exit 1), and
// undone before the next; the cluster is healthy again at the end.
func (e *env) statusBreaks(t *testing.T) {
	t.Run("etcd stopped on master3", func(t *testing.T) {
		e.exec("master3", "systemctl stop etcd")
		defer e.startEtcd(t, "master3")
		e.statusNames(t, "etcd stopped", nil, "master3 etcd inactive", "master3 etcd unhealthy")
	})
	t.Run("worker1's disk filled past the threshold", func(t *testing.T) {
		// The lab's hosts share this machine's filesystem, so the threshold
		// is set just above its use now and fallocate (instant, no writes)
		// takes it past: every host's disk is named, worker1's among them.
		df := strings.Fields(e.exec("worker1", "df -P -B1 / | tail -1"))
		used, _ := strconv.ParseInt(df[2], 10, 64)
		avail, _ := strconv.ParseInt(df[3], 10, 64)
		pct := int((used*100 + used + avail - 1) / (used + avail)) // df's rounding up
		threshold := pct + 1
		fill := (used+avail)*int64(threshold)/100 - used + (used+avail)/200
		if threshold > 99 || fill > avail-4<<30 {
			t.Fatalf("this machine's disk is %d%% used with %d GiB free: too full to fill safely", pct, avail>>30)
		}
		e.exec("worker1", fmt.Sprintf("fallocate -l %d /var/tmp/k4t-e2e-fill", fill))
		defer e.exec("worker1", "rm -f /var/tmp/k4t-e2e-fill")
		t.Cleanup(func() { e.tryExec("worker1", "rm -f /var/tmp/k4t-e2e-fill") })
		e.statusNames(t, "disk filled", []string{"--disk-threshold", strconv.Itoa(threshold)}, "worker1 disk / ")
		fmt.Printf("FIGURE status-disk-fill: %d GiB allocated on worker1, threshold %d%%\n", fill>>30, threshold)
	})
	t.Run("kubelet stopped on worker2", func(t *testing.T) {
		e.exec("worker2", "systemctl stop kubelet")
		defer e.exec("worker2", "systemctl start kubelet")
		e.statusNames(t, "kubelet stopped", nil, "worker2 kubelet inactive")
	})
	t.Run("healthy again", func(t *testing.T) {
		deadline := time.Now().Add(time.Minute)
		for {
			r := e.k4t("status", "-o", "text", "-f", e.inv)
			if r.code == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("status not healthy a minute after the breaks were undone: exit %d\n%s", r.code, r.stdout)
			}
			time.Sleep(2 * time.Second)
		}
	})
}

// statusVIPMoved: with the VIP holder killed, status says it is
// unreachable and that the other slb holds the VIP.
func (e *env) statusVIPMoved(t *testing.T, dead string) {
	rep := e.statusNames(t, "vip holder killed", nil, dead+" unreachable")
	for _, h := range rep.Hosts {
		if strings.HasPrefix(h.Name, "slb") && h.Name != dead && !h.HoldsVIP {
			t.Errorf("status: %s does not hold the VIP after %s was killed", h.Name, dead)
		}
	}
}

// startEtcd starts etcd on host and waits until all three members are healthy.
func (e *env) startEtcd(t *testing.T, host string) {
	e.exec(host, "systemctl start etcd")
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := e.etcdctl(host, "--dial-timeout=2s endpoint health -w simple")
		if err == nil && strings.Count(out, "is healthy") == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd on %s not healthy a minute after its start: %v\n%s", host, err, out)
		}
		time.Sleep(time.Second)
	}
}
