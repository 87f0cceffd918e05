package phases

import (
	"context"
	"strings"
	"testing"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// A hosts.toml k4t wrote for a registry the inventory no longer mirrors is
// removed; the ones it lists stay, and a file without k4t's header is never
// listed (grep -l on the header picks k4t's only).
func TestStaleRegistryHostsRemoved(t *testing.T) {
	c := &v1alpha1.Cluster{}
	c.Spec.Registry.Mirrors = map[string][]string{"registry.k8s.io": {"http://10.77.0.1:5000"}}
	keep, err := registryHostsFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	f := transport.NewFake("worker1").Respond("grep -l '^# Managed by k4t' /etc/containerd/certs.d/*/hosts.toml",
		"/etc/containerd/certs.d/registry.k8s.io/hosts.toml\n/etc/containerd/certs.d/docker.io/hosts.toml\n")
	h := &v1alpha1.Host{Name: "worker1"}
	hc := &engine.HostCtx{Host: h, Conn: f, Run: &engine.Run{Cluster: c}}
	cs, err := staleRegistryHosts(context.Background(), hc, "runtime", keep)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Desc != "remove /etc/containerd/certs.d/docker.io/hosts.toml (spec.registry.mirrors no longer lists docker.io)" {
		t.Fatalf("changes: %+v", cs)
	}
	if err := cs[0].Apply(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if ran := strings.Join(f.Commands(), "\n"); !strings.Contains(ran, "rm -f '/etc/containerd/certs.d/docker.io/hosts.toml'") {
		t.Errorf("ran:\n%s", ran)
	}
}
