package v1alpha1

import (
	"strings"
	"testing"
)

func names(hs []*Host) string { return hostNames(hs) }

func TestHelpers(t *testing.T) {
	c := mustParse(t, haBase, "ha")
	for got, want := range map[string]string{
		names(c.SLBs()):                "slb1, slb2",
		names(c.Masters()):             "m1, m2, m3",
		names(c.Workers()):             "w1",
		names(c.Nodes()):               "m1, m2, m3, w1",
		names(c.EtcdMembers()):         "m1, m2, m3",
		names(c.HostsWithRole("etcd")): "",
		c.FirstMaster().Name:           "m1",
		c.APIServerEndpoint():          "10.0.0.100:6443",
		c.Host("w1").Address:           "10.0.0.31",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if c.IsLightweight() || c.Host("nope") != nil || c.Bastion("nope") != nil {
		t.Error("IsLightweight/Host/Bastion")
	}
	// Pointers point into the inventory.
	c.Masters()[0].Labels = map[string]string{"a": "b"}
	if c.Spec.Hosts[2].Labels["a"] != "b" {
		t.Error("HostsWithRole must return pointers into Spec.Hosts")
	}

	ext := mustParse(t, edit(t, lightBase, w1, w1+"    - {name: e1, address: 10.0.0.41, roles: [etcd]}\n"), "ext")
	if got := names(ext.EtcdMembers()); got != "e1" {
		t.Errorf("external etcd members = %q", got)
	}
	empty := &Cluster{}
	if empty.FirstMaster() != nil || !empty.IsLightweight() || len(empty.EtcdMembers()) != 0 {
		t.Error("empty cluster helpers")
	}
	v6 := &Cluster{Spec: ClusterSpec{ControlPlaneEndpoint: Endpoint{Address: "fd00::1", Port: 6443}}}
	if got := v6.APIServerEndpoint(); got != "[fd00::1]:6443" {
		t.Errorf("IPv6 endpoint = %s", got)
	}
}

func TestBastionChain(t *testing.T) {
	c := &Cluster{Spec: ClusterSpec{Bastions: []Bastion{
		{Name: "inner", SSH: SSH{Bastion: "outer"}},
		{Name: "outer"},
		{Name: "loop1", SSH: SSH{Bastion: "loop2"}},
		{Name: "loop2", SSH: SSH{Bastion: "loop1"}},
		{Name: "dangling", SSH: SSH{Bastion: "ghost"}},
	}}}
	chain, err := c.BastionChain("inner")
	if err != nil || len(chain) != 2 || chain[0].Name != "outer" || chain[1].Name != "inner" {
		t.Fatalf("chain = %v, %v; want outer, inner", chain, err)
	}
	if chain, err := c.BastionChain(""); err != nil || len(chain) != 0 {
		t.Errorf("no bastion: %v, %v", chain, err)
	}
	if _, err := c.BastionChain("loop1"); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Errorf("loop: %v", err)
	}
	if _, err := c.BastionChain("dangling"); err == nil || !strings.Contains(err.Error(), `"ghost" is not defined`) {
		t.Errorf("dangling: %v", err)
	}
}

// Validate works on a Cluster built in code: paths, no lines.
func TestValidateInCode(t *testing.T) {
	c := &Cluster{APIVersion: APIVersion, Kind: Kind, Spec: ClusterSpec{Hosts: []Host{
		{Name: "m1", Address: "10.0.0.21", Roles: []Role{RoleMaster}},
		{Name: "m2", Address: "10.0.0.21", Roles: []Role{RoleWorker}},
	}}}
	c.SetDefaults()
	ps := c.Validate()
	if len(ps) != 1 || ps[0].Path != "spec.hosts[1].address" || ps[0].Line != 0 {
		t.Fatalf("got:\n%s", problemList(ps))
	}
}

// spec.registry.pull is bastion or nodes; nodes needs images from registries,
// and a bundle is the only source of artifacts.
func TestValidateArtifactSources(t *testing.T) {
	for _, tc := range []struct {
		art  Artifacts
		pull string
		want string
	}{
		{Artifacts{}, PullNodes, ""},
		{Artifacts{}, "bastion", ""},
		{Artifacts{}, "everywhere", "spec.registry.pull"},
		{Artifacts{Source: ArtifactsBuild}, PullNodes, "spec.registry.pull"},
		{Artifacts{Bundle: "b.tar"}, "", ""},
		{Artifacts{Bundle: "b.tar"}, PullNodes, "spec.registry.pull"},
		{Artifacts{Bundle: "b.tar", Source: ArtifactsBuild}, "", "spec.artifacts.bundle"},
	} {
		c := &Cluster{APIVersion: APIVersion, Kind: Kind, Spec: ClusterSpec{Hosts: []Host{{Name: "m1", Address: "10.0.0.21", Roles: []Role{RoleMaster}}},
			Artifacts: tc.art, Registry: Registry{Pull: tc.pull}}}
		c.SetDefaults()
		ps := c.Validate()
		var paths []string
		for _, p := range ps {
			paths = append(paths, p.Path)
		}
		if got := strings.Join(paths, ","); got != tc.want {
			t.Errorf("%+v pull %q: problems at %q, want %q\n%s", tc.art, tc.pull, got, tc.want, problemList(ps))
		}
	}
}

// spec.registry.ca is keyed by host[:port] and names a file.
func TestValidateRegistryCA(t *testing.T) {
	for server, want := range map[string]int{"registry.example.com:5000": 0, "https://registry.example.com": 1, "": 1} {
		c := &Cluster{APIVersion: APIVersion, Kind: Kind, Spec: ClusterSpec{Hosts: []Host{{Name: "m1", Address: "10.0.0.21", Roles: []Role{RoleMaster}}},
			Registry: Registry{CA: map[string]string{server: "/etc/pki/ca.pem"}}}}
		c.SetDefaults()
		if ps := c.Validate(); len(ps) != want {
			t.Errorf("%q: %d problem(s), want %d\n%s", server, len(ps), want, problemList(ps))
		}
	}
}
