package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The clusters are created at fromVersion and upgraded to toVersion (issue 10).
const (
	fromVersion = "v1.36.3"
	toVersion   = "v1.37.2"
)

// setVersion sets spec.kubernetes.version in the inventory file p.
func setVersion(t *testing.T, p, v string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if re := regexp.MustCompile(`(?m)^    version: v\S+$`); re.MatchString(s) {
		s = re.ReplaceAllString(s, "    version: "+v)
	} else if strings.Contains(s, "\n  kubernetes:\n") {
		s = strings.Replace(s, "\n  kubernetes:\n", "\n  kubernetes:\n    version: "+v+"\n", 1)
	} else {
		s = strings.Replace(s, "\nspec:\n", "\nspec:\n  kubernetes:\n    version: "+v+"\n", 1)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// upgradeLoad: a 3-replica Deployment with a PodDisruptionBudget behind a
// Service; a DaemonSet (drains leave it) calling the Service every 200 ms and
// printing "ok|fail <epoch seconds>"; and, pinned to worker1, one pod whose
// PodDisruptionBudget never allows a disruption.
const upgradeLoad = webApp + `---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: svcprobe}
spec:
  selector: {matchLabels: {app: svcprobe}}
  template:
    metadata: {labels: {app: svcprobe}}
    spec:
      tolerations: [{operator: Exists}]
      containers:
      - name: probe
        image: %[2]s
        imagePullPolicy: Never
        command: ["bash", "-c", "while :; do t=$EPOCHREALTIME; if timeout 1 bash -c 'exec 3<>/dev/tcp/web/80 && printf \"GET /health HTTP/1.0\\r\\n\\r\\n\" >&3 && grep -q \"200 OK\" <&3' 2>/dev/null; then echo ok $t; else echo fail $t; fi; sleep 0.2; done"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {kubernetes.io/hostname: worker1}
      containers:
      - name: stuck
        image: %[2]s
        imagePullPolicy: Never
        command: ["sleep", "infinity"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: stuck}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: stuck}}
`

// upgradeUnderLoad upgrades the HA cluster from fromVersion to toVersion
// with the API probed through the VIP and a Service probed from pods, every
// 200 ms: a dry run first; then a run killed with kill -9 in the middle of
// master2's kubeadm upgrade; a re-run that finishes the masters and stops at
// worker1, whose drain a PodDisruptionBudget blocks; and, with that PDB
// gone, a last run that finishes.
func (e *env) upgradeUnderLoad(t *testing.T) {
	m := fmt.Sprintf(upgradeLoad, imageAt(t, fromVersion, "coredns-image"), imageAt(t, fromVersion, "kube-proxy-image"))
	p := filepath.Join(t.TempDir(), "load.yaml")
	os.WriteFile(p, []byte(m), 0o644)
	e.mustKubectl("apply", "-f", p)
	for _, w := range []string{"deploy/web", "deploy/stuck", "ds/svcprobe"} {
		if out, err := e.kubectl("rollout", "status", w, "--timeout=180s"); err != nil {
			t.Fatalf("rollout %s: %v\n%s\n%s", w, err, out, e.mustKubectl("get", "pods", "-o", "wide"))
		}
	}
	setVersion(t, e.inv, toVersion)

	dry := e.k4t("upgrade", "-f", e.inv, "--dry-run")
	if dry.code != 0 {
		t.Fatalf("upgrade --dry-run: exit %d\n%s\n%s", dry.code, dry.stderr, tail(dry.stdout, 40))
	}
	mustContain(t, "upgrade --dry-run", dry.stdout, "kubeadm upgrade apply "+toVersion, "kubeadm upgrade node",
		"take master1 out of HAProxy", "cordon and drain worker2", "PodDisruptionBudget default/stuck allows no disruption")
	if v := e.kubeletVersions(t); strings.Contains(v, toVersion) {
		t.Fatalf("the dry run changed a node: %s", v)
	}

	probe := startProbe(t, filepath.Join(e.stateDir, "clusters", "lab", "admin.conf"), "https://"+vip+":6443")
	start := time.Now()
	// 1. kill -9 three seconds into master2's kubeadm upgrade node.
	killedAt := ""
	r1 := e.k4tWatched(func(ev map[string]any, kill func()) {
		msg, _ := ev["message"].(string)
		if ev["type"] == "change" && ev["action"] == "applied" && ev["host"] == "master2" && strings.Contains(msg, "kubeadm-upgrade.yaml") && killedAt == "" {
			killedAt = time.Since(start).Round(time.Second).String()
			go func() { time.Sleep(3 * time.Second); kill() }()
		}
	}, "upgrade", "-f", e.inv, "--drain-timeout", "30s")
	if killedAt == "" || r1.code == 0 {
		t.Fatalf("the first upgrade was not killed in master2's kubeadm upgrade (exit %d)\n%s\n%s", r1.code, r1.stderr, tail(r1.stdout, 30))
	}
	t.Logf("upgrade killed -9 at %s, in master2's kubeadm upgrade node", killedAt)
	// 2. The re-run carries on; worker1's drain is blocked by the stuck PDB.
	r2 := e.k4t("upgrade", "-f", e.inv, "--drain-timeout", "30s")
	if r2.code == 0 {
		t.Fatalf("upgrade with an unsatisfiable PDB on worker1 succeeded\n%s", tail(r2.stdout, 30))
	}
	mustContain(t, "upgrade blocked by a PDB", r2.stderr, "worker1", "default/stuck", "left cordoned")
	if got := e.mustKubectl("get", "node", "worker1", "-o", "jsonpath={.spec.unschedulable}"); got != "true" {
		t.Errorf("worker1 after the blocked drain: unschedulable=%q, want true (as the error says)", got)
	}
	t.Logf("blocked drain reported after %s: %s", r2.duration.Round(time.Second), lineWith(r2.stderr, "upgrade stopped at"))
	// 3. Without the PDB the upgrade finishes.
	e.mustKubectl("delete", "pdb", "stuck")
	r3 := e.k4t("upgrade", "-f", e.inv, "--drain-timeout", "2m")
	total := time.Since(start)
	calls, failures, longest := probe.finish()
	if r3.code != 0 {
		t.Fatalf("upgrade after the PDB went: exit %d\n%s\n%s", r3.code, r3.stderr, tail(r3.stdout, 40))
	}
	fmt.Printf("FIGURE upgrade-ha-%s-to-%s: %s in all over 3 runs (killed at %s; blocked drain run %s; last run %s); API via the VIP every 200ms: %d calls, %d failures, longest gap %s\n",
		fromVersion, toVersion, total.Round(time.Second), killedAt, r2.duration.Round(time.Second), r3.duration.Round(time.Second), calls, len(failures), longest.Round(time.Millisecond))
	for _, r := range []result{r1, r2, r3} {
		for _, ev := range r.events {
			if msg, _ := ev["message"].(string); strings.HasPrefix(msg, "upgraded ") {
				fmt.Printf("FIGURE   %s\n", msg)
			}
		}
	}
	if slow := probe.slowCalls(); len(slow) > 0 {
		fmt.Printf("FIGURE upgrade-ha slow API calls (answered after more than %s): %d: %s\n", slowCall, len(slow), strings.Join(slow, ", "))
	}
	if len(failures) > 0 {
		t.Errorf("%d API call(s) through the VIP failed during the upgrade: %v", len(failures), failures)
	}
	e.serviceProbeReport(t)

	if v := e.kubeletVersions(t); strings.Count(v, toVersion) != 5 {
		t.Errorf("kubelet versions after the upgrade: %s", v)
	}
	images := e.mustKubectl("get", "pods", "-n", "kube-system", "-l", "tier=control-plane", "-o", "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}")
	if n := strings.Count(images, ":"+toVersion); n != 9 {
		t.Errorf("%d control-plane pod(s) at %s, want 9:\n%s", n, toVersion, images)
	}
	// CoreDNS at the target's image: a node added later gets only the target's images.
	want := imageAt(t, toVersion, "coredns-image")
	if dns := e.mustKubectl("get", "deploy", "coredns", "-n", "kube-system", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); !strings.HasSuffix(dns, want[strings.LastIndex(want, ":"):]) {
		t.Errorf("CoreDNS runs %s after the upgrade, want %s", dns, want)
	}
	if n := e.mustKubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.spec.unschedulable}{\"\\n\"}{end}"); strings.Contains(n, "true") {
		t.Errorf("a node is left cordoned: %q", n)
	}
	e.checkSnapshot(t)
	if b, _ := os.ReadFile(filepath.Join(e.stateDir, "clusters", "lab", "versions.txt")); strings.Count(string(b), " "+toVersion+"\n") != 5 {
		t.Errorf("the state dir's versions.txt does not record %s on the 5 nodes:\n%s", toVersion, b)
	}
	a := e.k4t("apply", "-f", e.inv)
	if a.code != 0 || a.changes() != 0 {
		t.Errorf("apply right after the upgrade: exit %d, %d change(s)\n%s\n%s", a.code, a.changes(), a.stderr, tail(a.stdout, 30))
	}
	e.mustKubectl("delete", "-f", p, "--ignore-not-found")
}

// kubeletVersions lists "node=version" for every node.
func (e *env) kubeletVersions(t *testing.T) string {
	return e.mustKubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.kubeletVersion} {end}")
}

// checkSnapshot: the upgrade's etcd snapshot is in the state dir and its
// sha256 file matches it.
func (e *env) checkSnapshot(t *testing.T) {
	dir := filepath.Join(e.stateDir, "clusters", "lab", "backups", "etcd")
	dbs, _ := filepath.Glob(filepath.Join(dir, "pre-upgrade-"+toVersion+"-*.db"))
	if len(dbs) == 0 {
		t.Errorf("no pre-upgrade etcd snapshot in %s", dir)
		return
	}
	for _, db := range dbs {
		fmt.Printf("FIGURE upgrade-etcd-snapshot: %s, %d bytes, sha256 verified\n", filepath.Base(db), snapshotVerified(t, db))
	}
}

// snapshotVerified checks a snapshot in the state dir against its .sha256
// file and its mode (it holds the cluster's Secrets), and returns its size.
func snapshotVerified(t *testing.T, db string) int {
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(db + ".sha256")
	sum := sha256.Sum256(b)
	if f := strings.Fields(string(want)); len(f) == 0 || f[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("%s: sha256 file %q does not match", db, want)
	}
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v %v, want mode 0600", db, fi.Mode(), err)
	}
	return len(b)
}

// serviceProbeReport reads each svcprobe pod's log: failures and the longest
// time between two successful calls to the Service.
func (e *env) serviceProbeReport(t *testing.T) {
	pods := strings.Fields(e.mustKubectl("get", "pods", "-l", "app=svcprobe", "-o", "jsonpath={.items[*].metadata.name}"))
	for _, pod := range pods {
		node := e.mustKubectl("get", "pod", pod, "-o", "jsonpath={.spec.nodeName}")
		out, err := e.kubectl("logs", pod)
		if err != nil {
			t.Logf("svcprobe on %s: %v", node, err)
			continue
		}
		var oks []float64
		calls, fails := 0, 0
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) != 2 {
				continue
			}
			ts, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				continue
			}
			calls++
			if f[0] == "ok" {
				oks = append(oks, ts)
			} else {
				fails++
			}
		}
		sort.Float64s(oks)
		gap := 0.0
		for i := 1; i < len(oks); i++ {
			gap = max(gap, oks[i]-oks[i-1])
		}
		fmt.Printf("FIGURE upgrade-service-probe on %s: %d calls, %d failures, longest gap %.1fs\n", node, calls, fails, gap)
	}
}

// lineWith is the first line of s that contains sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

// upgradeLightweight upgrades the lightweight cluster (one master, one
// worker, no slb) created at fromVersion; the API blip on the only master is
// measured.
func (e *env) upgradeLightweight(t *testing.T, server string) {
	setVersion(t, e.inv, toVersion)
	probe := startProbe(t, filepath.Join(e.stateDir, "clusters", "lab", "admin.conf"), server)
	r := e.k4t("upgrade", "-f", e.inv)
	calls, failures, longest := probe.finish()
	if r.code != 0 {
		t.Fatalf("upgrade lightweight: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 40))
	}
	fmt.Printf("FIGURE upgrade-lightweight-%s-to-%s: %s; API every 200ms: %d calls, %d failed, longest gap %s (the only master restarts: a blip is expected)\n",
		fromVersion, toVersion, r.duration.Round(time.Second), calls, len(failures), longest.Round(time.Millisecond))
	if v := e.kubeletVersions(t); strings.Count(v, toVersion) != 2 {
		t.Errorf("kubelet versions after the upgrade: %s", v)
	}
	if a := e.k4t("apply", "-f", e.inv); a.code != 0 || a.changes() != 0 {
		t.Errorf("apply right after the upgrade: exit %d, %d change(s)\n%s", a.code, a.changes(), tail(a.stdout, 20))
	}
}
