package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// resetCluster checks `k4t reset` (issue 11) on the HA cluster: a dry run
// changes nothing; the reset leaves every host without k4t's units,
// listeners, directories, sysctls and /etc/hosts block, the VIP released;
// the state dir is archived; and a second reset has nothing left to do.
func (e *env) resetCluster(t *testing.T) {
	dry := e.k4t("reset", "--dry-run", "-f", e.inv)
	if dry.code != 0 {
		t.Fatalf("reset --dry-run: exit %d\n%s\n%s", dry.code, dry.stderr, tail(dry.stdout, 20))
	}
	mustContain(t, "reset --dry-run", dry.stdout, "kubeadm reset; remove kubelet", "stop etcd; remove", "release the VIP", "move the state dir")
	if _, err := e.kubectl("get", "--raw", "/readyz"); err != nil {
		t.Fatalf("the API does not answer after a dry run: %v", err)
	}
	// Without --yes, a reset asks, and anything but "yes" changes nothing.
	if r := e.k4t("reset", "-f", e.inv); r.code == 0 || !strings.Contains(r.stderr, "not confirmed") {
		t.Fatalf("reset without --yes and no answer: exit %d\n%s", r.code, r.stderr)
	}
	r := e.k4t("reset", "--yes", "-f", e.inv)
	if r.code != 0 {
		t.Fatalf("reset: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 30))
	}
	fmt.Printf("FIGURE reset-ha-7-hosts: %s, %d change(s)\n", r.duration.Round(100_000_000), r.changes())
	const check = `systemctl list-unit-files --no-legend 'etcd*' 'kubelet*' 'containerd*' 'k4t-*' | awk '$1 !~ /^k4t-lab-/ {print "unit " $1}'
for u in haproxy keepalived; do systemctl is-enabled -q $u 2>/dev/null && echo "enabled $u"; systemctl is-active -q $u && echo "active $u"; done
ss -ltnH | awk '{print $4}' | grep -E ':(6443|2379|2380|10250)$' | sed 's/^/listening /'
for d in /etc/kubernetes /var/lib/etcd /var/lib/kubelet /etc/sysctl.d/99-k4t.conf /etc/etcd /run/k4t; do [ -e $d ] && echo "left $d"; done
[ -n "$(ls -A /var/lib/containerd 2>/dev/null)" ] && echo "left /var/lib/containerd/*"
grep -q '^# BEGIN k4t managed block$' /etc/hosts && echo "hosts block"
ip -o addr | grep -q ' ` + vip + `/' && echo "holds the VIP"
true`
	for _, h := range append(slices.Clone(haHosts), spareMaster) {
		if out := e.exec(h, check); out != "" {
			t.Errorf("%s after the reset:\n%s", h, out)
		}
	}
	archives, _ := filepath.Glob(filepath.Join(e.stateDir, "clusters", "lab.reset-*"))
	if len(archives) != 1 {
		t.Fatalf("state dir archives %v, want one", archives)
	}
	if _, err := os.Stat(filepath.Join(archives[0], "pki", "ca.key")); err != nil {
		t.Errorf("the archive has no CA: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.stateDir, "clusters", "lab")); len(ents) != 1 || ents[0].Name() != "known_hosts" {
		t.Errorf("the fresh state dir holds %v, want only known_hosts", ents)
	}
	again := e.k4t("reset", "--yes", "-f", e.inv)
	if again.code != 0 || again.changes() != 0 {
		t.Errorf("a second reset: exit %d, %d change(s), want 0\n%s", again.code, again.changes(), tail(again.stdout, 20))
	}
	if archives, _ = filepath.Glob(filepath.Join(e.stateDir, "clusters", "lab.reset-*")); len(archives) != 1 {
		t.Errorf("after a second reset, state dir archives %v, want still one", archives)
	}
}
