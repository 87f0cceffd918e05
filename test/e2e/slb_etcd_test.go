package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/lab"
)

const vip = "10.77.0.100"

// The external-etcd topology: etcd1..3 take the addresses master1..3 have
// in the HA lab (10.77.0.13-15), so the etcd helpers serve both.
var slbEtcdHosts = []string{"slb1", "slb2", "etcd1", "etcd2", "etcd3", "master1", "master2", "worker1"}

// TestSLBAndEtcd: 2 slb, 3 etcd hosts, 2 masters, a worker: first k4t
// limited to the phases up to etcd (bad input, a kill in the etcd phase,
// the slb transaction, failover); then the whole external-etcd cluster,
// which must serve with an etcd host down, backed up and restored.
func TestSLBAndEtcd(t *testing.T) {
	e := newLab(t, slbEtcdHosts...)
	phases := "--only=preflight,pki,os,slb,etcd"
	// This cluster comes from the upstream releases (issue 15): through
	// mirrors on loopback that serve what the lab built the way dl.k8s.io,
	// GitHub and registry.k8s.io publish it, into a download cache of its
	// own. The etcd phase below fetches etcd; the whole apply the rest.
	up := startUpstreamMirror(t, lab.GatewayAddr(e.lab.Subnet).String()+":0", artifacts.DefaultK8sVersion)
	t.Cleanup(up.close)
	t.Setenv("K4T_DOWNLOAD_CACHE", t.TempDir())
	e.useMirror(t, up)

	t.Run("bad input stops in preflight and changes no host", func(t *testing.T) {
		e.badInput(t, phases)
	})

	// First create: killed with SIGKILL in the middle of the etcd phase.
	killed := e.createKilledInEtcd(t, phases)
	t.Logf("k4t killed -9 during the etcd phase after %s", killed.Round(time.Millisecond))
	r := e.k4t("create", "cluster", "-f", e.inv, "--accept-new-hosts", phases)
	if r.code != 0 {
		t.Fatalf("re-run after kill -9: exit %d\n%s\n%s", r.code, r.stderr, r.stdout)
	}
	t.Logf("re-run after kill -9 converged in %s with %d change(s); phases: %v", r.duration.Round(time.Millisecond), r.changes(), r.phaseDurations())

	t.Run("etcd members healthy over TLS and match the inventory", func(t *testing.T) {
		e.assertEtcd(t, "etcd1", "etcd2", "etcd3")
	})
	t.Run("VIP on exactly one slb and HAProxy listens on VIP:6443 there", func(t *testing.T) {
		holder := e.vipHolder(t, 10*time.Second)
		mustContain(t, "ss -ltn on "+holder, e.exec(holder, "ss -Hltn"), vip+":6443")
	})
	t.Run("a second apply changes and restarts nothing", func(t *testing.T) {
		before := e.activeSince(t)
		r := e.k4t("apply", "-f", e.inv, phases)
		if r.code != 0 {
			t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
		}
		if n := r.changes(); n != 0 {
			t.Errorf("no-op apply made %d change(s):\n%s", n, r.stdout)
		}
		if after := e.activeSince(t); !equalMaps(before, after) {
			t.Errorf("units restarted by a no-op apply:\nbefore %v\nafter  %v", before, after)
		}
		t.Logf("no-op apply took %s", r.duration.Round(time.Millisecond))
	})
	t.Run("a connection dropped mid-run (its sshd child killed) is redialled and the run goes on", func(t *testing.T) {
		e.dropConnectionMidRun(t, phases)
	})
	t.Run("a config rejected on one slb changes neither", func(t *testing.T) {
		e.slbTransaction(t, phases)
	})
	t.Run("kill -9 of the VIP holder moves the VIP within 5s; restart brings 2 healthy slb back", func(t *testing.T) {
		e.failover(t)
	})
	t.Run("external etcd: the rest of the cluster (2 masters, a worker) on the 3 etcd hosts; every node Ready", func(t *testing.T) {
		e.externalEtcdCluster(t, up)
	})
	t.Run("registry.pull nodes: an image gone from worker1 is pulled there through the mirror, with the digest pinned on the bastion", func(t *testing.T) {
		e.nodePull(t)
	})
	t.Run("external etcd: with etcd3's host killed, the API answers and writes through the VIP", func(t *testing.T) {
		e.externalEtcdMemberDown(t)
	})
	t.Run("external etcd: backup and restore, ConfigMap A back, B gone", func(t *testing.T) {
		e.etcdRestoreLightweight(t)
		e.assertEtcd(t, "etcd1", "etcd2", "etcd3")
	})
}

// etcdHosts are the lab's etcd members: etcd1..3 when it has etcd hosts,
// else the masters.
func (e *env) etcdHosts() []string {
	if b, _ := os.ReadFile(e.inv); strings.Contains(string(b), "name: etcd1") {
		return []string{"etcd1", "etcd2", "etcd3"}
	}
	return []string{"master1", "master2", "master3"}
}

// externalEtcdCluster applies every phase: the masters' kube-apiservers
// use the etcd hosts.
func (e *env) externalEtcdCluster(t *testing.T, up *upstreamMirror) {
	kubeadm := fmt.Sprintf("%s/release/%s/bin/linux/amd64/kubeadm", artifacts.KubernetesReleases, artifacts.DefaultK8sVersion)
	e.upstreamRefusesTampered(t, up, kubeadm, "master1")
	up.cut(kubeadm)
	// A hosts.toml k4t wrote for a registry no longer mirrored goes; one
	// without k4t's header is someone else's and stays.
	e.exec("worker1", "mkdir -p /etc/containerd/certs.d/old.example /etc/containerd/certs.d/theirs.example && "+
		"printf '# Managed by k4t: edits are overwritten on the next apply.\\nserver = \"https://old.example\"\\n' > /etc/containerd/certs.d/old.example/hosts.toml && "+
		"printf 'server = \"https://theirs.example\"\\n' > /etc/containerd/certs.d/theirs.example/hosts.toml")
	r := e.k4t("apply", "-f", e.inv)
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 30))
	}
	if left := e.exec("worker1", "ls /etc/containerd/certs.d"); strings.Contains(left, "old.example") || !strings.Contains(left, "theirs.example") {
		t.Errorf("worker1's /etc/containerd/certs.d after the apply: %q, want theirs.example kept and old.example gone", left)
	}
	fmt.Printf("FIGURE create-external-etcd-kubernetes-part: %s (etcd and slb already up)\n", r.duration.Round(time.Millisecond))
	reportDownloads("create-external-etcd-kubernetes-part", r)
	if rs := up.rangeRequests(); !strings.Contains(strings.Join(rs, " "), "/kubeadm bytes=") {
		t.Errorf("kubeadm's download, cut half way, was not resumed with a Range request (range requests: %v)", rs)
	}
	if b, err := os.ReadFile(filepath.Join(e.stateDir, "clusters", "lab", "artifact-pins.yaml")); err != nil || !strings.Contains(string(b), kubeadm+": ") {
		t.Errorf("kubeadm's sum is not pinned in the state dir: %v\n%s", err, b)
	}
	// A workload's image that only the mirror has: containerd on the
	// worker pulls it through the hosts.toml k4t wrote, over TLS checked
	// against the private CA k4t put beside it (spec.registry.ca).
	const only = "registry.k8s.io/k4t-e2e/only-on-the-mirror:1"
	up.pushOnlyHere(t, artifacts.DefaultK8sVersion, only)
	mustContain(t, "worker1's hosts.toml", e.exec("worker1", "cat /etc/containerd/certs.d/registry.k8s.io/hosts.toml"), "[host.'"+up.registry+"']", "  ca = '/etc/containerd/certs.d/registry.k8s.io/")
	e.mustKubectl("run", "from-mirror", "--image="+only, "--image-pull-policy=Always", "--restart=Never",
		`--overrides={"spec":{"nodeName":"worker1"}}`)
	start := time.Now()
	if out, err := e.kubectl("wait", "--for=condition=Ready", "pod/from-mirror", "--timeout=90s"); err != nil {
		t.Errorf("a pod whose image only the mirror has did not start on worker1: %v %s\n%s", err, out,
			e.mustKubectl("describe", "pod", "from-mirror"))
	} else {
		fmt.Printf("FIGURE registry-mirror: a pod of an image only the mirror has Ready on worker1 in %s\n", time.Since(start).Round(100*time.Millisecond))
	}
	e.mustKubectl("delete", "pod", "from-mirror", "--wait=false")
	nodes := e.mustKubectl("get", "nodes", "--no-headers")
	if n := strings.Count(nodes, " Ready "); n != 3 {
		t.Errorf("%d nodes Ready, want 3:\n%s", n, nodes)
	}
	manifest := e.exec("master2", "grep -- --etcd-servers /etc/kubernetes/manifests/kube-apiserver.yaml")
	mustContain(t, "master2's --etcd-servers", manifest, "10.77.0.13:2379", "10.77.0.14:2379", "10.77.0.15:2379")
	if out, _ := e.tryExec("master1", "systemctl is-active etcd"); out == "active" {
		t.Error("etcd runs on master1 in the external topology")
	}
}

// externalEtcdMemberDown kills etcd3's host: 2 of 3 members keep quorum,
// and the API reads and writes through the VIP.
func (e *env) externalEtcdMemberDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.lab.Kill(ctx, "etcd3"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.lab.Start(ctx, "etcd3"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			out, err := e.etcdctl("etcd1", "endpoint health -w simple")
			if err == nil && strings.Count(out, "is healthy") == 3 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd3 not healthy 90s after its start: %v %s", err, out)
			}
			time.Sleep(time.Second)
		}
	}()
	start := time.Now()
	var out string
	var err error
	for time.Since(start) < 30*time.Second {
		if out, err = e.kubectl("--server", "https://"+vip+":6443", "create", "configmap", "etcd3-down", "--from-literal=k=v"); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("a write through the VIP with etcd3 down: %v %s", err, out)
	}
	fmt.Printf("FIGURE external-etcd-member-down: a write through the VIP %s after kill -9 of etcd3's host\n", time.Since(start).Round(time.Millisecond))
	e.mustKubectl("delete", "configmap", "etcd3-down")
}

func (e *env) badInput(t *testing.T, phases string) {
	base, err := lab.Inventory(mustHosts(t, e.lab), e.lab.KeyFile(), vip)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, edit func(c *v1alpha1.Cluster)) string {
		c := *base
		c.Spec.Hosts = append([]v1alpha1.Host(nil), base.Spec.Hosts...)
		edit(&c)
		b, err := lab.MarshalInventory(&c)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unreachable := write("unreachable.yaml", func(c *v1alpha1.Cluster) {
		c.Spec.Hosts = append(c.Spec.Hosts, v1alpha1.Host{Name: "worker9", Address: "10.77.0.99",
			Roles: []v1alpha1.Role{v1alpha1.RoleWorker}, SSH: v1alpha1.SSH{KeyFile: e.lab.KeyFile(), ConnectTimeout: v1alpha1.Duration{Duration: 3 * time.Second}}})
	})
	wrongPW := write("wrong-password.yaml", func(c *v1alpha1.Cluster) {
		c.Spec.Hosts[2].SSH = v1alpha1.SSH{Password: &v1alpha1.SecretRef{Env: "K4T_E2E_WRONG_PW"}}
	})
	os.Setenv("K4T_E2E_WRONG_PW", "not-the-password")
	cases := []struct {
		name, inv string
		prep      func()
		want      []string
	}{
		{"unreachable host", unreachable, nil, []string{"worker9 / preflight: cannot connect to 10.77.0.99:22"}},
		{"wrong password", wrongPW, nil, []string{"etcd1 / preflight", `authentication as "root" failed`, "ssh.password"}},
		{"changed host key", e.inv, func() {
			// Record a wrong key for etcd2, as if it had been reinstalled
			// or an attacker answered in its place.
			dir := filepath.Join(e.stateDir, "clusters", "lab")
			os.MkdirAll(dir, 0o700)
			pub, err := os.ReadFile(e.lab.KeyFile() + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(pub))
			os.WriteFile(filepath.Join(dir, "known_hosts"), []byte("10.77.0.14 "+f[0]+" "+f[1]+"\n"), 0o600)
		}, []string{"etcd2 / preflight", "HOST KEY CHANGED"}},
	}
	// The unknown host key case runs first, while k4t has recorded no key.
	cases = append([]struct {
		name, inv string
		prep      func()
		want      []string
	}{{"unknown host key, not accepted", e.inv, nil, []string{"/ preflight", "unknown host key", "--accept-new-hosts"}}}, cases...)
	before := e.hostFingerprints(t)
	for i, tc := range cases {
		if tc.prep != nil {
			tc.prep()
		}
		args := []string{"create", "cluster", "-f", tc.inv, phases}
		if i > 0 {
			args = append(args, "--accept-new-hosts")
		}
		r := e.k4t(args...)
		if r.code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s", tc.name, r.code, r.stderr)
		}
		mustContain(t, tc.name+" error", r.stderr, tc.want...)
		t.Logf("%s → %s", tc.name, firstLine(r.stderr))
	}
	os.Remove(filepath.Join(e.stateDir, "clusters", "lab", "known_hosts"))
	after := e.hostFingerprints(t)
	for _, h := range slbEtcdHosts {
		if d := diffLines(before[h], after[h]); d != "" {
			t.Errorf("%s was changed by a run that failed in preflight:\n%s", h, d)
		}
	}
}

// hostFingerprints is, per host, the sha256 of every file under /etc and
// the paths k4t writes outside it.
func (e *env) hostFingerprints(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, h := range slbEtcdHosts {
		m[h] = e.exec(h, "find /etc /usr/local/bin /usr/local/sbin /var/lib/etcd /var/lib/kubelet /opt/cni -xdev -type f 2>/dev/null | sort | xargs -r sha256sum 2>/dev/null")
	}
	return m
}

// diffLines lists the lines only one side has.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ia, ib := in(a), in(b)
	var out []string
	for l := range ia {
		if !ib[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range ib {
		if !ia[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func mustHosts(t *testing.T, l *lab.Lab) []lab.Host {
	hs, err := l.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// createKilledInEtcd starts a create and SIGKILLs k4t once the etcd phase
// has applied its first change.
func (e *env) createKilledInEtcd(t *testing.T, phases string) time.Duration {
	start := time.Now()
	killed := time.Duration(0)
	e.k4tWatched(func(ev map[string]any, kill func()) {
		if ev["type"] == "change" && ev["phase"] == "etcd" && ev["action"] == "applied" && killed == 0 {
			kill()
			killed = time.Since(start)
		}
	}, "create", "cluster", "-f", e.inv, "--accept-new-hosts", phases)
	if killed == 0 {
		t.Fatalf("k4t ended before the etcd phase applied anything")
	}
	return killed
}

func (e *env) etcdctl(host, args string) (string, error) {
	return e.tryExec(host, "ETCDCTL_API=3 etcdctl --endpoints=https://10.77.0.13:2379,https://10.77.0.14:2379,https://10.77.0.15:2379 "+
		"--cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key "+args)
}

func (e *env) assertEtcd(t *testing.T, members ...string) {
	t.Helper()
	out, err := e.etcdctl(members[0], "member list -w simple")
	if err != nil {
		t.Fatalf("member list: %v %s", err, out)
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, ", "); len(f) >= 3 {
			names = append(names, f[2])
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(members, ",") {
		t.Errorf("etcd members %v, want %v", names, members)
	}
	out, err = e.etcdctl(members[1], "endpoint health -w simple")
	if err != nil || strings.Count(out, "is healthy") != len(members) {
		t.Errorf("endpoint health: %v\n%s", err, out)
	}
}

// vipHolders lists the slb hosts that have the VIP.
func (e *env) vipHolders() []string {
	var hs []string
	for _, h := range []string{"slb1", "slb2"} {
		if out, err := e.tryExec(h, "ip -o -4 addr show"); err == nil && strings.Contains(out, " "+vip+"/") {
			hs = append(hs, h)
		}
	}
	return hs
}

// vipDiagnosis says where the VIP is and what the slb hosts left up think:
// their addresses, keepalived's last words and HAProxy's servers, and this
// machine's neighbour entry for the VIP.
func (e *env) vipDiagnosis(down string) string {
	var b strings.Builder
	for _, h := range []string{"slb1", "slb2"} {
		if h == down {
			continue
		}
		for _, cmd := range []string{
			"ip -br -4 addr show",
			"journalctl -u keepalived -n 15 --no-pager -o short-precise",
			"echo 'show stat' | socat stdio /run/haproxy/admin.sock | cut -d, -f1,2,18,37 | grep -v '^#'",
		} {
			out, err := e.tryExec(h, cmd)
			fmt.Fprintf(&b, "--- %s: %s (%v)\n%s\n", h, cmd, err, strings.TrimSpace(out))
		}
	}
	out, _ := exec.Command("ip", "neigh", "show", vip).CombinedOutput()
	fmt.Fprintf(&b, "--- this machine: ip neigh show %s\n%s", vip, out)
	return b.String()
}

func (e *env) vipHolder(t *testing.T, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		hs := e.vipHolders()
		if len(hs) == 1 {
			return hs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIP held by %v, want exactly one slb", hs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// activeSince maps host/unit to the unit's ActiveEnterTimestampMonotonic.
func (e *env) activeSince(t *testing.T) map[string]string {
	m := map[string]string{}
	units := map[string][]string{"slb1": {"haproxy", "keepalived"}, "slb2": {"haproxy", "keepalived"}}
	for _, h := range e.etcdHosts() {
		units[h] = []string{"etcd"}
	}
	for h, us := range units {
		for _, u := range us {
			m[h+"/"+u] = e.exec(h, "systemctl show -p ActiveEnterTimestampMonotonic,MainPID --value "+u)
		}
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (e *env) slbTransaction(t *testing.T, phases string) {
	// On slb2 only, `haproxy -c` now fails; everything else is untouched.
	e.exec("slb2", `printf '#!/bin/sh\ncase " $* " in *" -c "*) echo "[ALERT] injected validation failure" >&2; exit 1;; esac\nexec /usr/sbin/haproxy "$@"\n' > /usr/local/sbin/haproxy && chmod 755 /usr/local/sbin/haproxy`)
	defer e.exec("slb2", "rm -f /usr/local/sbin/haproxy")
	changed := e.writeInventory("hosts-check-2s.yaml", func(s string) string {
		if strings.Contains(s, "\n  loadBalancer:\n") { // the lab's inventory sets VRRP there
			return strings.Replace(s, "\n  loadBalancer:\n", "\n  loadBalancer:\n    healthCheckInterval: 2s\n", 1)
		}
		return strings.Replace(s, "controlPlaneEndpoint:", "loadBalancer:\n    healthCheckInterval: 2s\n  controlPlaneEndpoint:", 1)
	})
	state := func() map[string]string {
		m := map[string]string{}
		for _, h := range []string{"slb1", "slb2"} {
			m[h+"/cfg"] = e.exec(h, "sha256sum /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf")
			m[h+"/pid"] = e.exec(h, "systemctl show -p MainPID,ActiveEnterTimestampMonotonic --value haproxy keepalived")
			m[h+"/candidates"] = e.exec(h, "ls /etc/haproxy /etc/keepalived | grep k4t-new || true")
		}
		return m
	}
	before := state()
	r := e.k4t("apply", "-f", changed, phases)
	if r.code == 0 {
		t.Fatalf("apply with a config slb2 rejects succeeded:\n%s", r.stdout)
	}
	mustContain(t, "transaction error", r.stderr, "slb2 / slb", "haproxy -c", "injected validation failure", "no slb host was changed")
	if after := state(); !equalMaps(before, after) {
		t.Errorf("live config or process changed although validation failed:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("rejected: %s", firstLine(r.stderr))
	e.exec("slb2", "rm -f /usr/local/sbin/haproxy")

	// On slb1 only, `keepalived -t` fails: rejected the same way.
	e.exec("slb1", `printf '#!/bin/sh\ncase " $* " in *" -t "*) echo "injected keepalived -t failure" >&2; exit 1;; esac\nexec /usr/sbin/keepalived "$@"\n' > /usr/local/sbin/keepalived && chmod 755 /usr/local/sbin/keepalived`)
	r = e.k4t("apply", "-f", changed, phases)
	e.exec("slb1", "rm -f /usr/local/sbin/keepalived")
	if r.code == 0 {
		t.Fatalf("apply with a config slb1's keepalived -t rejects succeeded:\n%s", r.stdout)
	}
	mustContain(t, "transaction error", r.stderr, "slb1 / slb", "keepalived -t", "injected keepalived -t failure", "no slb host was changed")
	if after := state(); !equalMaps(before, after) {
		t.Errorf("live config or process changed although keepalived -t failed:\nbefore %v\nafter  %v", before, after)
	}

	// Valid everywhere, but the reload fails on slb2 during the swap: every
	// slb host goes back to the configuration it had.
	e.exec("slb2", `printf '#!/bin/sh\n[ "$*" = "reload haproxy" ] && { echo "injected reload failure" >&2; exit 1; }\nexec /usr/bin/systemctl "$@"\n' > /usr/local/sbin/systemctl && chmod 755 /usr/local/sbin/systemctl`)
	r = e.k4t("apply", "-f", changed, phases)
	e.exec("slb2", "rm -f /usr/local/sbin/systemctl")
	if r.code == 0 {
		t.Fatalf("apply whose reload fails on slb2 succeeded:\n%s", r.stdout)
	}
	// (the error quotes haproxy's journal rather than the wrapper's message)
	mustContain(t, "swap error", r.stderr, "slb2 / slb", "reload haproxy", "rolled back")
	if after := state(); !equalMaps(before, after) {
		t.Errorf("live config or process not rolled back after the failed swap:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("rolled back: %s", firstLine(r.stderr))

	// With every tool healthy again, the same change goes through on both.
	r = e.k4t("apply", "-f", changed, phases)
	if r.code != 0 {
		t.Fatalf("apply after fixing slb2: exit %d\n%s", r.code, r.stderr)
	}
	for _, h := range []string{"slb1", "slb2"} {
		mustContain(t, h+" haproxy.cfg", e.exec(h, "cat /etc/haproxy/haproxy.cfg"), "inter 2s")
	}
	e.vipHolder(t, 10*time.Second)
}

func (e *env) failover(t *testing.T) {
	holder := e.vipHolder(t, 10*time.Second)
	other := map[string]string{"slb1": "slb2", "slb2": "slb1"}[holder]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	if err := e.lab.Kill(ctx, holder); err != nil {
		t.Fatal(err)
	}
	var moved time.Duration
	for time.Since(start) < 15*time.Second {
		if out, err := e.tryExec(other, "ip -o -4 addr show"); err == nil && strings.Contains(out, " "+vip+"/") {
			moved = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if moved == 0 {
		t.Fatalf("VIP did not move to %s within 15s of kill -9 %s", other, holder)
	}
	fmt.Printf("FIGURE vip-failover-after-kill9: %s (%s -> %s)\n", moved.Round(time.Millisecond), holder, other)
	t.Logf("VIP moved %s -> %s in %s after kill -9", holder, other, moved.Round(time.Millisecond))
	if moved > 5*time.Second {
		t.Errorf("VIP failover took %s, want <= 5s", moved)
	}
	if err := e.lab.Start(ctx, holder); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, h := range []string{"slb1", "slb2"} {
			out, err := e.tryExec(h, "systemctl is-active haproxy keepalived")
			ok = ok && err == nil && out == "active\nactive"
		}
		if ok && len(e.vipHolders()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restarting %s the slb pair did not become healthy with one VIP holder (holders %v)", holder, e.vipHolders())
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s restarted: 2 healthy slb, VIP on %v", holder, e.vipHolders())
}

// dropConnectionMidRun kills etcd2's sshd session processes while k4t is
// in the slb phase (etcd2 idle): the etcd phase must still reach etcd2.
func (e *env) dropConnectionMidRun(t *testing.T, phases string) {
	killed := ""
	r := e.k4tWatched(func(ev map[string]any, _ func()) {
		if ev["type"] == "phase_start" && ev["phase"] == "slb" && killed == "" {
			// Every root session but the one this command runs in.
			killed, _ = e.tryExec("etcd2", `for p in $(pgrep -f 'sshd: root@notty'); do [ "$p" != "$PPID" ] && kill -9 "$p" && echo "$p"; done; true`)
			if killed == "" {
				killed = "(none)"
			}
		}
	}, "apply", "-f", e.inv, phases)
	if killed == "" || killed == "(none)" {
		t.Fatalf("no sshd session of k4t's was killed on etcd2 (%q)", killed)
	}
	if r.code != 0 {
		t.Fatalf("apply after etcd2's connection was killed: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("killed sshd session(s) %s on etcd2; the run redialled and finished", strings.Join(strings.Fields(killed), ","))
}

// useMirror rewrites the lab inventory to take every artifact from the
// upstream releases through up.
func (e *env) useMirror(t *testing.T, up *upstreamMirror) {
	c, err := lab.Inventory(mustHosts(t, e.lab), e.lab.KeyFile(), vip)
	if err != nil {
		t.Fatal(err)
	}
	up.use(c)
	e.saveInventory(t, c)
}

// upstreamRefusesTampered flips a byte of upstream's file on the mirror:
// apply stops at the artifacts phase, naming the URL, where the expected
// sum came from and both sums, and no host is changed (kubeadm is not on
// host). The original is put back.
func (e *env) upstreamRefusesTampered(t *testing.T, up *upstreamMirror, upstream, host string) {
	restore := up.tamper(t, upstream)
	r := e.k4t("apply", "-f", e.inv)
	restore()
	fmt.Printf("FIGURE upstream-tampered-file: refused after %s\n", r.duration.Round(100*time.Millisecond))
	if r.code == 0 {
		t.Fatalf("apply with a tampered file on the mirror succeeded")
	}
	mirrored := up.files + "/" + upstream[strings.Index(upstream, "://")+3:]
	mustContain(t, "the refusal of a tampered file", r.stderr, "artifacts: ", mirrored, "its published checksum file", "nothing reached a host")
	if n := r.changes(); n != 0 {
		t.Errorf("the refused apply made %d change(s) on hosts", n)
	}
	if out, err := e.tryExec(host, "test ! -e /usr/local/bin/kubeadm"); err != nil {
		t.Errorf("%s after the refused apply: kubeadm is there (%v %s)", host, err, out)
	}
}

// reportDownloads prints what a run downloaded: files, bytes, the
// artifacts phase's time and rate.
func reportDownloads(name string, r result) {
	var n, bytes int64
	for _, ev := range r.events {
		if ev["type"] == "download" && ev["action"] == "done" {
			b, _ := ev["bytes"].(float64)
			n, bytes = n+1, bytes+int64(b)
		}
	}
	d := r.phaseDurations()["artifacts"]
	rate := 0.0
	if d > 0 {
		rate = float64(bytes) / d / 1e6
	}
	fmt.Printf("FIGURE %s downloads: %d file(s) and image(s), %d bytes, artifacts phase %.1fs (%.0f MB/s)\n", name, n, bytes, d, rate)
}

// nodePull: with spec.registry.pull: nodes, apply has containerd on worker1
// pull the kube-proxy image someone removed there (through the registry
// mirror of its hosts.toml), checked against the digest the bastion pinned
// for the tag; the bastion pulls no image.
func (e *env) nodePull(t *testing.T) {
	image := "registry.k8s.io/kube-proxy:" + artifacts.DefaultK8sVersion
	inv := e.writeInventory("pull-nodes.yaml", func(s string) string {
		if !strings.Contains(s, "\n  registry:\n") {
			t.Fatalf("the inventory has no registry block:\n%s", s)
		}
		return strings.Replace(s, "\n  registry:\n", "\n  registry:\n    pull: nodes\n", 1)
	})
	e.exec("worker1", "ctr -n k8s.io images ls -q | grep '^registry.k8s.io/kube-proxy[:@]' | xargs -r ctr -n k8s.io images rm >/dev/null")
	r := e.k4t("apply", "-f", inv)
	if r.code != 0 {
		t.Fatalf("apply with pull: nodes: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 30))
	}
	fmt.Printf("FIGURE registry-pull-nodes: apply %s, %d change(s), %d bytes uploaded\n", r.duration.Round(100*time.Millisecond), r.changes(), r.uploaded())
	mustContain(t, "apply with pull: nodes", r.stdout, "pull image "+image+" on the node (digest sha256:")
	for _, ev := range r.events {
		if ev["type"] == "download" && strings.Contains(fmt.Sprint(ev["message"]), "-image") {
			t.Errorf("the bastion pulled an image: %v", ev["message"])
		}
	}
	pins, _ := os.ReadFile(filepath.Join(e.stateDir, "clusters", "lab", "artifact-pins.yaml"))
	var digest string
	for _, l := range strings.Split(string(pins), "\n") {
		if d, ok := strings.CutPrefix(strings.TrimSpace(l), image+": "); ok {
			digest = d
		}
	}
	if digest == "" {
		t.Fatalf("no digest pinned for %s:\n%s", image, pins)
	}
	mustContain(t, "worker1's kube-proxy image", e.exec("worker1", "crictl --runtime-endpoint unix:///run/containerd/containerd.sock inspecti -o json "+image), digest)
}
