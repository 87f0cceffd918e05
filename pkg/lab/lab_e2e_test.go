package lab

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testLab is a lab that cannot collide with one a user runs: its own work
// dir, bridge, subnet and cgroup name (the base cache is shared).
func testLab(t testing.TB) *Lab {
	if os.Geteuid() != 0 || os.Getenv("K4T_LAB_TEST") != "1" {
		t.Skip("lab e2e: needs root and K4T_LAB_TEST=1")
	}
	l := New("/var/lib/k4t-lab-test")
	l.Bridge = "k4tlabt0"
	l.Subnet = netip.MustParsePrefix("10.78.0.0/24")
	l.VIP = "10.78.0.100"
	l.CgroupName = "k4t-lab-test"
	return l
}

func readSysctls(t testing.TB) map[string]string {
	out := map[string]string{}
	for k := range globalSysctls {
		b, err := os.ReadFile(sysctlFile(k))
		if err != nil {
			t.Fatal(err)
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out
}

// assertGone checks that nothing of the lab is left on the machine.
func assertGone(t testing.TB, l *Lab, hosts []string, sysctls map[string]string) {
	t.Helper()
	if exists, _ := link(l.Bridge); exists {
		t.Errorf("bridge %s still exists", l.Bridge)
	}
	for _, h := range hosts {
		if exists, _ := link("vb-" + h); exists {
			t.Errorf("veth vb-%s still exists", h)
		}
	}
	for _, m := range mountPoints() {
		if strings.HasPrefix(m, l.Dir+"/") {
			t.Errorf("still mounted: %s", m)
		}
	}
	if g := findGroups(l.CgroupName); len(g) != 0 {
		t.Errorf("cgroups left: %v", g)
	}
	if r := iptablesRules(context.Background(), l.Bridge); len(r) != 0 {
		t.Errorf("iptables rules naming %s: %v", l.Bridge, r)
	}
	if got := readSysctls(t); !reflect.DeepEqual(got, sysctls) {
		t.Errorf("sysctls not restored: %v, want %v", got, sysctls)
	}
	if ents, _ := os.ReadDir(filepath.Join(l.Dir, "hosts")); len(ents) != 0 {
		t.Errorf("work dir still has hosts: %v", ents)
	}
}

func TestLabE2E(t *testing.T) {
	l := testLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	hosts := []string{"master1", "worker1"}
	before := readSysctls(t)
	t.Cleanup(func() {
		if err := l.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
	})

	start := time.Now()
	if _, err := l.EnsureBase(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("base ready in %s", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	if err := l.Up(ctx, hosts); err != nil {
		t.Fatal(err)
	}
	t.Logf("up (2 hosts) in %s", time.Since(start).Round(100*time.Millisecond))
	if got := readSysctls(t); got["vm.overcommit_memory"] != "1" || got["kernel.panic"] != "10" || got["kernel.panic_on_oops"] != "1" {
		t.Errorf("lab sysctls not set: %v", got)
	}

	exec := func(host, cmd string) string {
		t.Helper()
		out, err := l.Exec(ctx, host, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	for _, h := range hosts {
		if got := exec(h, "hostname"); got != h {
			t.Errorf("hostname on %s: %q", h, got)
		}
	}

	// password login
	pw, err := l.Password()
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Dial(ctx, "worker1", ssh.Password(pw))
	if err != nil {
		t.Fatalf("password login: %v", err)
	}
	s, _ := c.NewSession()
	if out, err := s.Output("id -u"); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("id -u by password: %q %v", out, err)
	}
	c.Close()
	if _, err := l.Dial(ctx, "worker1", ssh.Password("wrong")); err == nil {
		t.Error("a wrong password logged in")
	}

	// separate roots, containerd on the machine's fs, kmsg, writable cgroups, networkd address
	exec("master1", "echo a > /root/only-on-master1")
	if out := exec("worker1", "test -e /root/only-on-master1 && echo present || echo absent"); out != "absent" {
		t.Errorf("file from master1 seen on worker1: %s", out)
	}
	exec("worker1", "echo x > /var/lib/containerd/probe")
	if _, err := os.Stat(filepath.Join(l.hostDir("worker1"), "containerd", "probe")); err != nil {
		t.Errorf("containerd bind: %v", err)
	}
	exec("worker1", "test -c /dev/kmsg")
	exec("worker1", "mkdir /sys/fs/cgroup/memory/k4t-probe && rmdir /sys/fs/cgroup/memory/k4t-probe")
	if out := exec("master1", "timeout 3 bash -c 'echo > /dev/tcp/10.78.0.12/22' && echo ok"); out != "ok" {
		t.Errorf("master1 cannot reach worker1: %s", out)
	}
	if out := exec("master1", "cat /etc/resolv.conf"); strings.Contains(out, "127.0.0.1") {
		t.Errorf("resolv.conf points at loopback: %s", out)
	}
	if out := exec("master1", "systemctl is-enabled haproxy keepalived || true"); !strings.Contains(out, "disabled") {
		t.Errorf("haproxy/keepalived should be installed and disabled: %s", out)
	}
	if out := exec("master1", "cat /etc/machine-id"); out == exec("worker1", "cat /etc/machine-id") || len(out) != 32 {
		t.Errorf("machine-ids not distinct: %s", out)
	}

	// memory per idle host
	time.Sleep(3 * time.Second)
	st, err := l.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st {
		if !h.Running || h.InitPID == 0 {
			t.Errorf("status: %+v", h)
		}
		t.Logf("idle %s: memory cgroup %d MiB, rss %d MiB", h.Name, h.MemoryBytes>>20, h.RSSBytes>>20)
	}

	// clean stop and start: the upper layer and host keys stay
	keys, _ := l.hostKeys("worker1")
	exec("worker1", "echo kept > /root/persist")
	start = time.Now()
	if err := l.Stop(ctx, "worker1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop in %s", time.Since(start).Round(10*time.Millisecond))
	if st, _ := l.Status(); st[1].Running {
		t.Fatalf("worker1 still running after Stop")
	}
	start = time.Now()
	if err := l.Start(ctx, "worker1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("start in %s", time.Since(start).Round(10*time.Millisecond))
	if got, _ := l.hostKeys("worker1"); !reflect.DeepEqual(got, keys) {
		t.Errorf("host keys changed over stop/start")
	}
	if out := exec("worker1", "cat /root/persist"); out != "kept" {
		t.Errorf("upper layer lost: %q", out)
	}

	// crash and start
	if err := l.Kill(ctx, "master1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.Status(); st[0].Running {
		t.Fatalf("master1 still running after Kill")
	}
	start = time.Now()
	if err := l.Start(ctx, "master1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("start after kill -9 in %s", time.Since(start).Round(10*time.Millisecond))
	if out := exec("master1", "cat /root/only-on-master1"); out != "a" {
		t.Errorf("after crash: %q", out)
	}

	// inventory
	inv := filepath.Join(l.Dir, "hosts.yaml")
	if err := l.WriteInventory(inv, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(inv); !strings.Contains(string(b), "address: 10.78.0.12") {
		t.Errorf("inventory:\n%s", b)
	}

	start = time.Now()
	if err := l.Down(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("down (2 hosts) in %s", time.Since(start).Round(10*time.Millisecond))
	assertGone(t, l, hosts, before)

	// A lab left running (as by a killed `k4t lab up`) is removed by Cleanup
	// from a new Lab value, as a new process would.
	if err := l.Up(ctx, []string{"etcd1"}); err != nil {
		t.Fatal(err)
	}
	l2 := testLab(t)
	if err := l2.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l2, []string{"etcd1"}, before)
}

// BenchmarkLabUp7 brings 7 hosts up and down, reporting seconds for each and
// the memory of an idle host. K4T_LAB_TEST=1 go test -run - -bench LabUp7 -benchtime 1x
func BenchmarkLabUp7(b *testing.B) {
	l := testLab(b)
	ctx := context.Background()
	if _, err := l.EnsureBase(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Down(context.Background()) })
	hosts := []string{"slb1", "slb2", "master1", "master2", "master3", "worker1", "worker2"}
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := l.Up(ctx, hosts); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "up-s")
		time.Sleep(5 * time.Second)
		st, _ := l.Status()
		var mem, rss uint64
		for _, h := range st {
			mem += h.MemoryBytes
			rss += h.RSSBytes
		}
		b.ReportMetric(float64(mem>>20)/float64(len(st)), "MiB/host")
		b.ReportMetric(float64(rss>>20)/float64(len(st)), "rssMiB/host")
		start = time.Now()
		if err := l.Down(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "down-s")
	}
}
