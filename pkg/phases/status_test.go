package phases

import (
	"context"
	"strings"
	"testing"

	"k4t.io/k4t/pkg/status"
	"k4t.io/k4t/pkg/templates"
)

// status asks every host once with the script its roles need, changes
// nothing, and says which host is unreachable and that the API (here: no
// admin.conf on the fake master1) did not answer.
func TestClusterStatus(t *testing.T) {
	r, fakes, _, _ := restoreRun(t, true)
	for name, f := range fakes {
		if name == "worker3" {
			f.Fail("sh -s", 255, "connection reset")
			continue
		}
		out := "uptime 100\nmem_kb 4000000 3000000\n"
		switch {
		case strings.HasPrefix(name, "slb"):
			out += "unit haproxy active\nunit keepalived active\nbackend master1 UP\n"
			if name == "slb1" {
				out += "vip held\n"
			}
		case strings.HasPrefix(name, "master"):
			out += "unit etcd active\nreadyz ok\netcd_health [{\"health\":true}]\n"
		}
		f.Respond("sh -s", out)
	}
	rep := ClusterStatus(context.Background(), r, status.DefaultThresholds)
	if len(rep.Hosts) != len(r.Cluster.Spec.Hosts) {
		t.Fatalf("%d hosts", len(rep.Hosts))
	}
	for _, want := range []string{"worker3 unreachable", "the API did not answer"} {
		if !strings.Contains(rep.Verdict, want) {
			t.Errorf("verdict lacks %q: %s", want, rep.Verdict)
		}
	}
	if len(rep.Problems) != 2 {
		t.Errorf("problems beyond worker3 and the API: %q", rep.Problems)
	}
	for name, f := range fakes {
		cmds := f.Commands()
		if len(cmds) < 1 || cmds[0] != "sh -s" {
			t.Errorf("%s was asked %q", name, cmds)
		}
		if len(f.Writes) > 0 {
			t.Errorf("%s was written to: %v", name, f.Writes)
		}
	}
	in := statusInput(r, r.Cluster.Host("master2"))
	if !in.Etcd || !in.Master || in.SLB || strings.Join(in.Units, " ") != "etcd containerd kubelet" {
		t.Errorf("master2's status input: %+v", in)
	}
	if _, err := templates.StatusScript(in); err != nil {
		t.Error(err)
	}
}
