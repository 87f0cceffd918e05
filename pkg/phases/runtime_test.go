package phases

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
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

// With spec.registry.pull: nodes, containerd on the node pulls the image and
// its digest must be the one pinned on the bastion; another is removed and
// refused.
func TestNodePullChecksTheDigest(t *testing.T) {
	const image, pinned = "registry.k8s.io/pause:3.10.2", "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	pins, err := artifacts.LoadPins("")
	if err != nil {
		t.Fatal(err)
	}
	if err := pins.Set(image, pinned); err != nil {
		t.Fatal(err)
	}
	m := &artifacts.Manifest{Artifacts: []artifacts.Artifact{{Name: "pause-image", Version: "3.10.2", Kind: artifacts.KindImage, Image: image}}}
	store := artifacts.NewStore(m, t.TempDir(), artifacts.WithPins(pins), artifacts.WithNodePulls(true))
	r := &engine.Run{Cluster: &v1alpha1.Cluster{}, Options: engine.Options{Artifacts: store}}
	for _, tc := range []struct {
		served string
		ok     bool
	}{{pinned, true}, {"sha256:2222222222222222222222222222222222222222222222222222222222222222", false}} {
		f := transport.NewFake("worker1").Respond(crictl+" pull", `{"status":{"repoDigests":["registry.k8s.io/pause@`+tc.served+`"]}}`)
		hc := &engine.HostCtx{Host: &v1alpha1.Host{Name: "worker1"}, Conn: f, Run: r}
		c, err := nodePullChange(context.Background(), hc, "runtime", "pause-image", image)
		if err != nil || !strings.Contains(c.Desc, "pull image "+image+" on the node (digest "+pinned+")") {
			t.Fatalf("change: %+v, %v", c, err)
		}
		err = c.Apply(context.Background(), f)
		rmi := strings.Contains(strings.Join(f.Commands(), "\n"), crictl+" rmi")
		if tc.ok && (err != nil || rmi) {
			t.Errorf("pinned digest served: %v (rmi %v)", err, rmi)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "want "+pinned) || !rmi) {
			t.Errorf("another digest served: %v (rmi %v)", err, rmi)
		}
	}
}

// A mirror's private CA (spec.registry.ca) goes beside its registry's
// hosts.toml, which names it; a CA file the bastion lacks stops the plan.
func TestRegistryCAFiles(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &v1alpha1.Cluster{}
	c.Spec.Registry.Mirrors = map[string][]string{"registry.k8s.io": {"https://10.77.0.1:5000", "http://10.77.0.1:5001"}}
	c.Spec.Registry.CA = map[string]string{"10.77.0.1:5000": ca}
	files, err := registryHostsFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].File.Path != "/etc/containerd/certs.d/registry.k8s.io/10.77.0.1_5000.crt" {
		t.Fatalf("files: %+v", files)
	}
	if h := string(files[1].File.Content); !strings.Contains(h, "[host.'https://10.77.0.1:5000']\n  capabilities = ['pull', 'resolve']\n  ca = '/etc/containerd/certs.d/registry.k8s.io/10.77.0.1_5000.crt'") {
		t.Errorf("hosts.toml:\n%s", h)
	}
	c.Spec.Registry.CA["10.77.0.1:5000"] = filepath.Join(t.TempDir(), "gone.pem")
	if _, err := registryHostsFiles(c); err == nil || !strings.Contains(err.Error(), "spec.registry.ca 10.77.0.1:5000") {
		t.Errorf("missing CA file: %v", err)
	}
}
