package phases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/transport"
)

var updatePlans = flag.Bool("update", false, "rewrite testdata/plans/* from the current phases")

// TestPlanGolden plans every host-changing phase of create against fresh
// fake hosts (nothing installed, no unit running) for the example
// inventories, and compares the Change list — host, kind, description and
// diff — with testdata/plans/INVENTORY/PHASE.txt. Certificates and public
// keys are made anew each run, so their diffs are shown as a placeholder. `go test
// ./pkg/phases -run TestPlanGolden -update` rewrites the files.
func TestPlanGolden(t *testing.T) {
	// A new phase value per case: phases keep what Prepare read.
	phases := []func() engine.Phase{
		func() engine.Phase { return &OS{} }, func() engine.Phase { return &SLB{} }, func() engine.Phase { return &Etcd{} },
		func() engine.Phase { return &Runtime{} }, func() engine.Phase { return &Kubelet{} }, func() engine.Phase { return &ControlPlane{} },
		func() engine.Phase { return &Workers{} }, func() engine.Phase { return &Network{} }, func() engine.Phase { return &NodeLabels{} },
	}
	type planCase struct {
		inv, file string
		phase     engine.Phase
		prep      func(map[string]*transport.Fake)
	}
	var cases []planCase
	for _, inv := range []string{"ha.yaml", "lightweight.yaml", "external-etcd.yaml"} {
		for _, newPhase := range phases {
			p := newPhase()
			cases = append(cases, planCase{inv, p.Name(), p, nil})
		}
	}
	// Hosts left half-way by a killed run: master1's init and master2's join
	// are undone (never kubeadm reset) before they run again.
	cases = append(cases, planCase{"ha.yaml", "control-plane-after-kill", &ControlPlane{}, func(f map[string]*transport.Fake) {
		f["master1"].Respond("ls /etc/kubernetes/kubelet.conf", "/etc/kubernetes/manifests/kube-apiserver.yaml\n")
		f["master2"].Respond("ls /etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf\n")
	}})
	for _, tc := range cases {
		inv, p := tc.inv, tc.phase
		t.Run(inv+"/"+tc.file, func(t *testing.T) {
			got := planOnFreshHosts(t, inv, p, tc.prep)
			path := filepath.Join("testdata", "plans", strings.TrimSuffix(inv, ".yaml"), tc.file+".txt")
			if *updatePlans {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./pkg/phases -run TestPlanGolden -update`)", err)
			}
			if got != string(want) {
				d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(want)), B: difflib.SplitLines(got),
					FromFile: path, ToFile: "planned", Context: 2})
				t.Errorf("the plan differs (run with -update if intended):\n%s", d)
			}
		})
	}
}

// planOnFreshHosts runs plan (PKI, then the phase) on fake hosts that hold
// nothing and answer the facts command like a Debian host.
func planOnFreshHosts(t *testing.T, inv string, p engine.Phase, prep func(map[string]*transport.Fake)) string {
	t.Helper()
	c, st := loadExample(t, inv)
	fakes := map[string]*transport.Fake{}
	for _, h := range c.Spec.Hosts {
		f := transport.NewFake(h.Name)
		f.Respond("sh -s -- ", fmt.Sprintf("os=debian\nos_version=12\narch=x86_64\nhostname=%s\ninit=systemd\ncgroup=cgroup2fs\nmemtotal=4000000\nmemavailable=3000000\ndisk_free_kb=90000000\nswap=0\niface=eth0\nbr_netfilter=yes\noverlay=yes\npkg=apt-get\nmissing=haproxy\nmissing=keepalived\n", h.Name))
		fakes[h.Name] = f
	}
	if prep != nil {
		prep(fakes)
	}
	coll := &events.Collect{}
	r := &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("golden", coll), DryRun: true,
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return fakes[h.Name], nil },
		Options: engine.Options{Artifacts: fakeArtifacts(t)}}
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{&PKI{}, p}}).Execute(context.Background()); err != nil {
		t.Fatalf("plan: %v", err)
	}
	var b strings.Builder
	for _, ev := range coll.Of(events.Change) {
		fmt.Fprintf(&b, "%s | %s | %s\n", ev.Host, ev.Kind, ev.Message)
		switch {
		case strings.Contains(ev.Diff, "-----BEGIN "):
			b.WriteString("    (PEM: made anew each run)\n")
		case ev.Diff != "":
			for _, l := range strings.Split(strings.TrimRight(ev.Diff, "\n"), "\n") {
				b.WriteString("    " + l + "\n")
			}
		}
	}
	if b.Len() == 0 {
		b.WriteString("(no changes)\n")
	}
	return b.String()
}

// fakeArtifacts is a manifest of tiny local files with every name a node
// needs, so plans do not depend on what the machine has built.
func fakeArtifacts(t *testing.T) *artifacts.Store {
	dir := t.TempDir()
	m := &artifacts.Manifest{Version: "golden", Dir: dir, Source: "test"}
	add := func(name string, kind artifacts.Kind, install, image string) {
		p := name + ".bin"
		content := []byte(name + "\n")
		if err := os.WriteFile(filepath.Join(dir, p), content, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		m.Artifacts = append(m.Artifacts, artifacts.Artifact{Name: name, Version: "v0", Kind: kind, Path: p,
			SHA256: hex.EncodeToString(sum[:]), Install: install, Image: image})
	}
	for _, n := range []string{"etcd", "etcdctl", "etcdutl", "containerd", "containerd-shim-runc-v2", "ctr", "crictl", "kubeadm", "kubelet", "kubectl"} {
		add(n, artifacts.KindBinary, "/usr/local/bin/"+n, "")
	}
	add("runc", artifacts.KindBinary, "/usr/local/sbin/runc", "")
	add("cni-plugins", artifacts.KindArchive, "/opt/cni/bin", "")
	for _, img := range []string{"pause:3.10.2", "kube-proxy:v1.37.2", "coredns/coredns:v1.14.6", "kube-apiserver:v1.37.2", "kube-controller-manager:v1.37.2", "kube-scheduler:v1.37.2"} {
		name := strings.TrimPrefix(img[:strings.Index(img, ":")], "coredns/") + "-image"
		add(name, artifacts.KindImage, "", "registry.k8s.io/"+img)
	}
	return artifacts.NewStore(m, t.TempDir())
}

// loadExample loads examples/INV and opens a state dir for it.
func loadExample(t *testing.T, inv string) (*v1alpha1.Cluster, *state.Dir) {
	t.Helper()
	c, problems, err := v1alpha1.Load(filepath.Join("..", "..", "examples", inv))
	if err != nil {
		t.Fatalf("%v %v", err, problems)
	}
	st, err := state.Open(t.TempDir(), c.Metadata.Name)
	if err != nil {
		t.Fatal(err)
	}
	return c, st
}
