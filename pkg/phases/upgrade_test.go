package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/transport"
)

// upgradeFixture is the example HA cluster (inventory at v1.37.2) whose
// masters run the control plane at cp and whose kubelets run kubelet.
func upgradeFixture(t *testing.T, cp, kubelet string, applied bool) (*engine.Run, *events.Collect, map[string]*transport.Fake) {
	t.Helper()
	c, st := loadExample(t, "ha.yaml")
	fakes := map[string]*transport.Fake{}
	var objs []any
	for _, h := range c.Spec.Hosts {
		f := transport.NewFake(h.Name)
		fakes[h.Name] = f
		if h.HasRole(v1alpha1.RoleMaster) {
			for _, m := range controlPlaneManifests {
				f.SetFile(transport.File{Path: manifestsDir + "/" + m + ".yaml", Mode: 0o600,
					Content: []byte(fmt.Sprintf("spec:\n  containers:\n  - image: registry.k8s.io/%s:%s\n", m, cp))})
			}
		}
		if h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker) {
			objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.Name},
				Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: kubelet},
					Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}})
		}
	}
	if applied {
		fakes["master1"].SetFile(transport.File{Path: "/etc/kubernetes/k4t/upgrade-apply-v1.37.2.done", Mode: 0o644, Content: []byte{}})
	}
	coll := &events.Collect{}
	r := &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("test", coll), DryRun: true,
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return fakes[h.Name], nil },
		Options: engine.Options{Artifacts: fakeArtifacts(t)}}
	// kubeadm's ClusterConfiguration as `kubeadm init` at the older version
	// stored it: CoreDNS pinned to that version's tag.
	client := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config", Namespace: "kube-system"},
		Data: map[string]string{"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\ndns:\n  imageTag: v1.14.2\netcd:\n  external:\n    endpoints:\n    - https://10.0.0.11:2379\nkind: ClusterConfiguration\n"}})
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Node:
			client.Tracker().Add(o)
		}
	}
	if _, err := r.Value("kube-client", func() (any, error) { return client, nil }); err != nil {
		t.Fatal(err)
	}
	return r, coll, fakes
}

// TestUpgradePlanGolden: `k4t upgrade --dry-run` on masters and workers at
// v1.36.3 shows every step of every node, in the roll's order
// (testdata/plans/ha/upgrade.txt; -update rewrites it). At the target, and
// with nothing left pending, it plans nothing.
func TestUpgradePlanGolden(t *testing.T) {
	o := &UpgradeOptions{Drain: DrainOptions{Timeout: 300e9}}
	r, coll, _ := upgradeFixture(t, "v1.36.3", "v1.36.3", false)
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{&UpgradeMasters{o}, &UpgradeWorkers{o}}}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ev := range coll.Of(events.Change) {
		fmt.Fprintf(&b, "%s | %s | %s\n", ev.Host, ev.Kind, ev.Message)
	}
	got := b.String()
	path := filepath.Join("testdata", "plans", "ha", "upgrade.txt")
	if *updatePlans {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if want, err := os.ReadFile(path); err != nil || string(want) != got {
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(want)), B: difflib.SplitLines(got), FromFile: path, ToFile: "planned", Context: 2})
		t.Errorf("the upgrade plan differs (run with -update if intended): %v\n%s", err, d)
	}
	for _, want := range []string{"master1 | command | kubeadm upgrade apply v1.37.2", "master2 | command | kubeadm upgrade node", "worker3 | command | uncordon worker3"} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %q", want)
		}
	}

	r, coll, _ = upgradeFixture(t, "v1.37.2", "v1.37.2", true)
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{&UpgradeMasters{o}, &UpgradeWorkers{o}}}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(coll.Of(events.Change)); n != 0 {
		t.Errorf("at the target: %d change(s) planned, want 0", n)
	}

	// A kubeadm upgrade apply killed after the static pods but before it
	// finished (no done-marker) runs again.
	r, coll, _ = upgradeFixture(t, "v1.37.2", "v1.37.2", false)
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{&UpgradeMasters{o}}}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	var again []string
	for _, ev := range coll.Of(events.Change) {
		again = append(again, ev.Host+": "+ev.Message)
	}
	if s := strings.Join(again, "\n"); !strings.Contains(s, "master1: kubeadm upgrade apply v1.37.2") || strings.Contains(s, "master2") {
		t.Errorf("after an apply cut short, want master1's apply again and nothing on master2:\n%s", s)
	}
}

// TestUpgradeCheckRefuses: a skipped minor and a downgrade are refused in
// the preflight, with the host and the way out, before any host changes.
func TestUpgradeCheckRefuses(t *testing.T) {
	for _, tc := range []struct{ cp, want string }{
		{"v1.35.4", "master1: runs kube-apiserver v1.35.4: v1.37.2 skips a minor — upgrade one minor at a time (set v1.36.x first, or pass --step"},
		{"v1.38.0", "master1: runs kube-apiserver v1.38.0: a downgrade to v1.37.2 is refused"},
	} {
		r, _, fakes := upgradeFixture(t, tc.cp, "v1.35.4", false)
		fakes["master1"].Respond("ETCDCTL_API=3 etcdctl", strings.Repeat("https://x:2379 is healthy: successfully committed proposal\n", 3))
		err := (&UpgradeCheck{Opts: &UpgradeOptions{}}).Check(context.Background(), r)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "no host was changed") {
			t.Errorf("control plane at %s: %v\nwant %q", tc.cp, err, tc.want)
		}
	}
}

func TestUpgradePath(t *testing.T) {
	have := []string{"v1.35.4", "v1.36.1", "v1.36.3", "v1.37.2", "v1.38.0-rc.1"}
	for _, tc := range []struct{ from, to, want string }{
		{"v1.36.3", "v1.37.2", "v1.37.2"},
		{"v1.35.4", "v1.37.2", "v1.36.3 v1.37.2"},
		{"v1.37.2", "v1.37.3", "v1.37.3"},
		{"v1.34.4", "v1.37.2", "v1.35.4 v1.36.3 v1.37.2"},
		{"v1.33.0", "v1.37.2", "error: no artifact set for v1.34"},
		{"v1.37.2", "v1.39.0", "error: no artifact set for v1.38"}, // an rc is not a step
	} {
		got, err := UpgradePath(tc.from, tc.to, have)
		s := strings.Join(got, " ")
		if err != nil {
			s = "error: " + err.Error()
		}
		if !strings.HasPrefix(s, tc.want) {
			t.Errorf("%s → %s: %s, want %s", tc.from, tc.to, s, tc.want)
		}
	}
}
