package lab

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"k4t.io/k4t/pkg/apis/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite examples/lab/hosts.yaml")

var sevenHosts = []string{"slb1", "slb2", "master1", "master2", "master3", "worker1", "worker2"}

func TestAllocateHosts(t *testing.T) {
	sub := netip.MustParsePrefix(DefaultSubnet)
	hs, err := AllocateHosts(sub, []string{"master1", "slb1", "worker1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{"master1", "10.77.0.11"}, {"slb1", "10.77.0.12"}, {"worker1", "10.77.0.13"}}
	if !reflect.DeepEqual(hs, want) {
		t.Fatalf("got %v, want %v", hs, want)
	}
	if g := GatewayAddr(sub).String(); g != "10.77.0.1" {
		t.Fatalf("gateway %s", g)
	}
	for _, bad := range [][]string{nil, {"a", "a"}, {"Master1"}, {"1x"}, {"a_b"}, {"averyveryverylongname"}} {
		if _, err := AllocateHosts(sub, bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	// a /28 holds .11 to .14 (.15 is broadcast)
	small := netip.MustParsePrefix("10.9.0.0/28")
	if _, err := AllocateHosts(small, []string{"a", "b", "c", "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := AllocateHosts(small, []string{"a", "b", "c", "d", "e"}); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Fatalf("want a does-not-fit error, got %v", err)
	}
}

func TestRoleFor(t *testing.T) {
	for name, want := range map[string]v1alpha1.Role{"slb1": "slb", "master3": "master", "worker12": "worker", "etcd1": "etcd"} {
		if r, err := RoleFor(name); err != nil || r != want {
			t.Errorf("%s: got %q %v, want %q", name, r, err, want)
		}
	}
	if _, err := RoleFor("node1"); err == nil {
		t.Error("node1: want an error")
	}
}

func TestInventoryShape(t *testing.T) {
	hs, err := AllocateHosts(netip.MustParsePrefix(DefaultSubnet), sevenHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Inventory(hs, "/var/lib/k4t-lab/id_ed25519", DefaultVIP)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalInventory(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, probs, err := v1alpha1.Parse(b, "lab inventory"); err != nil {
		t.Fatalf("inventory does not validate: %v", err)
	} else if len(probs) != 0 {
		t.Errorf("inventory warnings: %v", probs)
	}
	var back v1alpha1.Cluster
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("inventory does not decode strictly: %v\n%s", err, b)
	}
	if back.APIVersion != "k4t.io/v1alpha1" || back.Kind != "Cluster" {
		t.Errorf("apiVersion/kind: %q %q", back.APIVersion, back.Kind)
	}
	if back.Spec.ControlPlaneEndpoint.Address != "10.77.0.100" {
		t.Errorf("endpoint %q", back.Spec.ControlPlaneEndpoint.Address)
	}
	if !reflect.DeepEqual(back.Spec.Preflight.IgnoreErrors, []string{"SystemVerification"}) {
		t.Errorf("preflight %v", back.Spec.Preflight.IgnoreErrors)
	}
	if len(back.Spec.Hosts) != 7 {
		t.Fatalf("%d hosts", len(back.Spec.Hosts))
	}
	h := back.Spec.Hosts[2]
	if h.Name != "master1" || h.Address != "10.77.0.13" || !h.HasRole(v1alpha1.RoleMaster) || h.SSH.KeyFile != "/var/lib/k4t-lab/id_ed25519" {
		t.Errorf("host 2: %+v", h)
	}
	if lb := back.Spec.LoadBalancer; lb.VRRPVersion != 3 || lb.AdvertInterval.Duration != 200*time.Millisecond {
		t.Errorf("loadBalancer %+v, want VRRPv3 adverts every 200ms", lb)
	}
	for _, s := range []string{"etcd:", "network:"} {
		if strings.Contains(string(b), s) {
			t.Errorf("inventory has empty section %q:\n%s", s, b)
		}
	}
	if _, err := Inventory([]Host{{"node1", "10.77.0.11"}}, "k", DefaultVIP); err == nil {
		t.Error("want an error for a name without a role")
	}
}

// The committed example is what `k4t lab up` writes for the 7-host shape.
func TestExampleInventoryUpToDate(t *testing.T) {
	hs, _ := AllocateHosts(netip.MustParsePrefix(DefaultSubnet), sevenHosts)
	c, err := Inventory(hs, New("").KeyFile(), DefaultVIP)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := MarshalInventory(c)
	if *update {
		if err := os.WriteFile("../../examples/lab/hosts.yaml", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("../../examples/lab/hosts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("examples/lab/hosts.yaml is stale; regenerate it with `go test ./pkg/lab -run TestExampleInventoryUpToDate -update`; want:\n%s", want)
	}
}

func TestPlanCleanup(t *testing.T) {
	if p := planCleanup(leftovers{Bridge: "k4tlab0"}); len(p) != 0 {
		t.Fatalf("nothing left: want an empty plan, got %v", p)
	}
	f := leftovers{
		Pids:         []int{42},
		Mounts:       []string{"/w/hosts/a/root", "/w/hosts/a/root/proc", "/w/hosts/b/root"},
		Cgroups:      []string{"/sys/fs/cgroup/memory/x/k4t-lab"},
		Links:        []string{"vb-a"},
		Bridge:       "k4tlab0",
		BridgeExists: true,
		BridgeOurs:   true,
		Iptables:     [][]string{{"iptables", "-t", "filter", "-D", "FORWARD", "-i", "k4tlab0", "-j", "ACCEPT"}},
		SysctlSaved:  true,
		DirEntries:   []string{"/w/hosts", "/w/lab.json"},
	}
	var got []string
	for _, a := range planCleanup(f) {
		got = append(got, a.String())
	}
	want := []string{
		"kill 42",
		"rmcgroup /sys/fs/cgroup/memory/x/k4t-lab",
		"unmount /w/hosts/a/root/proc", "unmount /w/hosts/b/root", "unmount /w/hosts/a/root",
		"dellink vb-a", "delbridge k4tlab0",
		"iptables: iptables -t filter -D FORWARD -i k4tlab0 -j ACCEPT",
		"sysctl restore",
		"rmdir /w/hosts", "rmdir /w/lab.json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// a bridge that is not ours is never deleted, nor its members
	f.BridgeOurs = false
	for _, a := range planCleanup(f) {
		if a.Kind == "delbridge" || a.Kind == "dellink" {
			t.Fatalf("plan deletes a bridge that is not ours: %v", a)
		}
	}
}

func TestMirrorFromSources(t *testing.T) {
	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`
	if m := mirrorFromSources(deb822); m != "http://deb.debian.org/debian" {
		t.Errorf("deb822: %q", m)
	}
	oneLine := "deb http://security.debian.org/debian-security bookworm-security main\n# deb http://x/ bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib\n"
	if m := mirrorFromSources(oneLine); m != "http://mirror.example/debian" {
		t.Errorf("one-line: %q", m)
	}
	if m := mirrorFromSources("deb http://x/ubuntu jammy main\n"); m != "" {
		t.Errorf("other suite: %q", m)
	}
}

func TestParseHierarchies(t *testing.T) {
	mi := `30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 30 0:29 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	pc := "9:name=systemd:/\n4:memory:/process_api/e36\n3:cpuset:/\n1:cpu:/\n0::/\n"
	got := parseHierarchies(mi, pc)
	want := []hierarchy{
		{Mount: "/sys/fs/cgroup/systemd", Current: "/"},
		{Mount: "/sys/fs/cgroup/memory", Current: "/process_api/e36"},
		{Mount: "/sys/fs/cgroup/cpuset", Current: "/", Cpuset: true},
		{Mount: "/sys/fs/cgroup/cpu", Current: "/"},
		{Mount: "/sys/fs/cgroup/unified", Current: "/"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestRuleDeletes(t *testing.T) {
	dump := "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -i k4tlab0 -j ACCEPT\n-A FORWARD -i eth0 -j ACCEPT\nCOMMIT\n*nat\n-A POSTROUTING -o k4tlab0+ -j MASQUERADE\nCOMMIT\n"
	got := ruleDeletes("iptables", dump, "k4tlab0")
	want := [][]string{
		{"iptables", "-t", "filter", "-D", "FORWARD", "-i", "k4tlab0", "-j", "ACCEPT"},
		{"iptables", "-t", "nat", "-D", "POSTROUTING", "-o", "k4tlab0+", "-j", "MASQUERADE"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestSysctlsAndNspawn(t *testing.T) {
	saved := parseSaved("vm.overcommit_memory=0\nkernel.panic=1\nkernel.panic_on_oops=0\nfs.other=3\n")
	if len(saved) != 3 || saved["kernel.panic"] != "1" {
		t.Fatalf("saved %v", saved)
	}
	if f := sysctlFile("kernel.panic_on_oops"); f != "/proc/sys/kernel/panic_on_oops" {
		t.Fatal(f)
	}
	l := New("/w")
	args := strings.Join(l.nspawnArgs(Host{"master1", "10.77.0.13"}), " ")
	for _, want := range []string{"-D /w/hosts/master1/root", "--boot", "--register=no", "--keep-unit", "--network-bridge=k4tlab0",
		"--system-call-filter=@keyring", "--bind=/w/hosts/master1/containerd:/var/lib/containerd", "--bind=/dev/kmsg", "--capability=all"} {
		if !strings.Contains(args, want) {
			t.Errorf("nspawn args lack %q: %s", want, args)
		}
	}
	env := nspawnEnv([]string{"PATH=/bin", "SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes"})
	if !reflect.DeepEqual(env, []string{"PATH=/bin"}) {
		t.Errorf("env %v", env)
	}
	if h := RecipeHash(); len(h) != 12 || h != RecipeHash() {
		t.Errorf("recipe hash %q", h)
	}
}

func TestCheckToolsNamesTheAptLine(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := checkTools("systemd-nspawn", "zstd", "ip")
	if err == nil {
		t.Fatal("want an error with an empty PATH")
	}
	for _, want := range []string{"systemd-nspawn (package systemd-container)", "apt-get install -y debootstrap systemd-container zstd sshpass iproute2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
