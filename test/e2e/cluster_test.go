package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/lab"
)

var haHosts = []string{"slb1", "slb2", "master1", "master2", "master3", "worker1", "worker2"}

// spareMaster is a lab host TestHACluster keeps out of its inventory until
// it replaces master3 (issue 11).
const spareMaster = "master4"

// only keeps the lab hosts named.
func only(hs []lab.Host, names []string) []lab.Host {
	var out []lab.Host
	for _, h := range hs {
		if slices.Contains(names, h.Name) {
			out = append(out, h)
		}
	}
	return out
}

// kubectlPath is the kubectl k4t installs, used here from the bastion.
func kubectlPath(t *testing.T) string {
	root := os.Getenv("K4T_ARTIFACT_CACHE")
	if root == "" {
		root = "/var/cache/k4t/artifacts"
	}
	p := filepath.Join(root, "v1.37.2", "bin", "kubectl")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("kubectl not built (%v): run `make artifacts`", err)
	}
	return p
}

// kubectl runs kubectl on the bastion with the kubeconfig k4t fetched.
func (e *env) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := filepath.Join(e.stateDir, "clusters", "lab", "admin.conf")
	out, err := exec.CommandContext(ctx, kubectlPath(e.t), append([]string{"--kubeconfig", kc, "--request-timeout=10s"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (e *env) mustKubectl(args ...string) string {
	e.t.Helper()
	out, err := e.kubectl(args...)
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestHACluster: 2 slb (VIP), 3 masters (stacked etcd), 2 workers, created
// at fromVersion through a kill -9 in every phase (issue 8); upgraded to
// toVersion under load (issue 10); then status and its breaks, state dir
// copies, traffic, failures, a no-op re-apply, the repair of an etcd member
// whose data was emptied, backups and restores, the certificates renewed
// by the scheduled job, the node lifecycle and a reset; then a lightweight
// cluster on two of the reset hosts (instead of a lab of its own).
func TestHACluster(t *testing.T) {
	e := newLab(t, append(slices.Clone(haHosts), spareMaster)...)
	pws := e.mixedAccess(t)           // password, jump host and sudo logins, as issue 8's user had
	setVersion(t, e.inv, fromVersion) // upgraded to toVersion below
	firstIDs, _ := e.createWithKillSweep(t)

	t.Run("after the sweep: 3 of 3 etcd members healthy with the IDs they had when etcd formed", func(t *testing.T) {
		if firstIDs == "" {
			t.Fatal("etcd never had 3 healthy members between the kills")
		}
		if now := e.etcdMemberIDs(); now != firstIDs {
			t.Errorf("etcd members now %q, when etcd formed %q", now, firstIDs)
		}
		t.Logf("etcd members: %s", firstIDs)
	})
	t.Run("every node Ready and every kube-system pod Running, via the VIP from the bastion", func(t *testing.T) {
		nodes := e.mustKubectl("get", "nodes", "-o", "wide")
		t.Logf("\n%s", nodes)
		if n := strings.Count(nodes, " Ready "); n != 5 {
			t.Errorf("%d nodes Ready, want 5", n)
		}
		pods := e.mustKubectl("get", "pods", "-n", "kube-system", "--no-headers")
		for _, l := range strings.Split(pods, "\n") {
			if !strings.Contains(l, "Running") {
				t.Errorf("kube-system pod not Running: %s", l)
			}
		}
		mustContain(t, "kubeconfig server", e.mustKubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"), "https://"+vip+":6443")
	})
	t.Run("k4t status: healthy in text, json and prometheus, every host reached", func(t *testing.T) {
		e.clusterStatus(t)
	})
	t.Run("k4t status names each break (etcd stopped, a disk past the threshold, kubelet stopped) in text and JSON, exit 1", func(t *testing.T) {
		e.statusBreaks(t)
	})
	t.Run("k4t state backup to master1 and worker1; a second backup copies nothing; the state dir lost and restored from a copy", func(t *testing.T) {
		e.stateCopies(t)
	})
	t.Run("upgrade "+fromVersion+" → "+toVersion+" under load (dry run; kill -9 mid master roll; a PDB that blocks a drain; 0 failed API calls)", func(t *testing.T) {
		e.upgradeUnderLoad(t)
	})
	t.Run("a 3-replica Deployment answers from a pod on another node, by ClusterIP and by DNS name", func(t *testing.T) {
		e.deploymentTraffic(t)
	})
	t.Run("a second apply changes and restarts nothing", func(t *testing.T) {
		before := e.clusterUnits(t)
		r := e.k4t("apply", "-f", e.inv)
		if r.code != 0 {
			t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
		}
		if n := r.changes(); n != 0 {
			t.Errorf("no-op apply made %d change(s):\n%s", n, tail(r.stdout, 30))
		}
		if n := r.uploaded(); n != 0 {
			t.Errorf("no-op apply uploaded %d byte(s), want 0", n)
		}
		if after := e.clusterUnits(t); !equalMaps(before, after) {
			t.Errorf("units restarted by a no-op apply:\nbefore %v\nafter  %v", before, after)
		}
		fmt.Printf("FIGURE no-op-apply-7-hosts: %s, %d bytes uploaded\n", r.duration.Round(time.Millisecond), r.uploaded())
	})
	t.Run("kill -9 of the VIP holder: kubectl through the VIP answers again within 5s", func(t *testing.T) {
		holder := e.vipHolder(t, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		if err := e.lab.Kill(ctx, holder); err != nil {
			t.Fatal(err)
		}
		restarted := false
		defer func() { // even when a check below fails: the subtests after it need both slb
			if !restarted {
				e.lab.Start(context.WithoutCancel(ctx), holder)
			}
		}()
		// A probe every 100 ms, each on its own (a probe waiting out its timeout
		// must not delay the next): the first answer is when the API is back.
		// In-process: a kubectl started every 100 ms on the loaded 2-core lab
		// was itself slow enough to time out (CI, 2026-12-02: no answer in 30 s).
		client := apiClient(t, filepath.Join(e.stateDir, "clusters", "lab", "admin.conf"), 2*time.Second)
		answered := make(chan time.Duration, 1)
		stop := make(chan struct{})
		var lastErr atomic.Value
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					go func() {
						resp, err := client.Get("https://" + vip + ":6443/readyz")
						if err == nil {
							resp.Body.Close()
							if resp.StatusCode != http.StatusOK {
								err = errors.New(resp.Status)
							}
						}
						if err != nil {
							lastErr.Store(err.Error())
							return
						}
						select {
						case answered <- time.Since(start):
						default:
						}
					}()
				}
			}
		}()
		var back time.Duration
		select {
		case back = <-answered:
		case <-time.After(30 * time.Second):
		}
		close(stop)
		if back == 0 {
			t.Fatalf("API through the VIP did not answer within 30s of kill -9 %s (last error: %v)\n%s", holder, lastErr.Load(), e.vipDiagnosis(holder))
		}
		fmt.Printf("FIGURE api-through-vip-after-kill9-of-%s: %s\n", holder, back.Round(time.Millisecond))
		if back > 5*time.Second {
			t.Errorf("API back after %s, want <= 5s", back)
		}
		e.statusVIPMoved(t, holder)
		restarted = true
		if err := e.lab.Start(ctx, holder); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stopping master1: the API through the VIP answers and etcd keeps quorum", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.lab.Stop(ctx, "master1"); err != nil {
			t.Fatal(err)
		}
		defer func() { // even when the test fails: the subtests after it need master1
			if err := e.lab.Start(ctx, "master1"); err != nil {
				t.Fatal(err)
			}
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := e.kubectl("get", "nodes", "--no-headers")
			if err == nil && strings.Contains(out, "master2") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("API through the VIP with master1 down: %v %s", err, out)
			}
			time.Sleep(500 * time.Millisecond)
		}
		// A stopped leader costs an election (etcd's election timeout, 1s)
		// and HAProxy a few health checks before it stops sending to
		// master1: both are waited for, up to 20s, and the wait reported.
		stopped := time.Now()
		deadline = stopped.Add(20 * time.Second)
		var out string
		var err error
		for try := 1; ; try++ {
			out, err = e.tryExec("master2", "ETCDCTL_API=3 etcdctl --endpoints=https://10.77.0.14:2379,https://10.77.0.15:2379 --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key endpoint health -w simple")
			if err == nil && strings.Count(out, "is healthy") == 2 {
				_, err = e.kubectl("create", "configmap", fmt.Sprintf("quorum-check-%d", try), "--from-literal=k=v")
				if err == nil {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd and a write through the API with master1 down, after 20s: %v\n%s", err, out)
			}
			time.Sleep(500 * time.Millisecond)
		}
		fmt.Printf("FIGURE master1-stopped: 2/2 etcd members healthy and a write through the VIP %s after the API first answered\n", time.Since(stopped).Round(time.Millisecond))
	})
	t.Run("inventory labels reach the Node; dropped ones go, others' stay", func(t *testing.T) {
		e.nodeLabels(t)
	})
	t.Run("drain: a PodDisruptionBudget that blocks is named; without it every pod but DaemonSets' leaves; uncordon", func(t *testing.T) {
		e.drainWorker(t, "worker1")
	})
	t.Run("no secret in the state dir's logs, journal or rendered copies, nor the passwords on the hosts", func(t *testing.T) {
		e.noSecretsInTheOpen(t, pws)
		e.passwordsNowhere(t, pws)
	})
	t.Run("an etcd member whose data dir was emptied by hand is replaced by apply, quorum kept throughout", func(t *testing.T) {
		e.repairEmptiedMember(t, "master2")
	})
	t.Run("k4t etcd backup; restore --dry-run lists every step and changes nothing", func(t *testing.T) {
		e.etcdRestorePlanned(t)
	})
	t.Run("scheduled etcd snapshots on every member: run now, kept, --status, --collect", func(t *testing.T) {
		e.etcdScheduledSnapshots(t)
	})
	t.Run("etcd restore refuses a snapshot with a flipped byte before anything stops", func(t *testing.T) {
		e.etcdRestoreRefusesDamaged(t)
	})
	t.Run("etcd restore from the backup killed -9 after the members stopped: other commands refuse; the re-run finishes it: ConfigMap A back, B and C gone, every node Ready, hashkv identical", func(t *testing.T) {
		e.etcdRestoreKilled(t)
	})
	t.Run("the scheduled renew (threshold 400d: every leaf) rolls the masters one at a time under a probe through the VIP; a killed renew is finished", func(t *testing.T) {
		e.certsRenewHA(t)
	})
	t.Run("delete refused while it would break etcd's quorum: master2's etcd stopped, master3 asked", func(t *testing.T) {
		e.refuseDeleteWithoutQuorum(t)
	})
	t.Run("delete master3 under a probe through the VIP: 2 of 2 members healthy, HAProxy lists the live masters", func(t *testing.T) {
		e.deleteMaster(t)
	})
	t.Run("replace master3 by master4: apply adds it as an etcd learner, promotes it, joins it; 3 of 3 members, HAProxy lists the live masters", func(t *testing.T) {
		e.replaceMaster(t)
	})
	t.Run("delete worker2 with web pods on it: they move and the Service answers", func(t *testing.T) {
		e.deleteWorker(t)
	})
	t.Run("add worker2 back: apply joins it; it is Ready and runs a pod", func(t *testing.T) {
		e.addWorker(t)
	})
	t.Run("delete worker1 with its host stopped: refused without --force, removed with it", func(t *testing.T) {
		e.forceDeleteStopped(t)
	})
	t.Run("k4t reset: every host clean, the VIP released, the state dir archived; a second reset changes nothing", func(t *testing.T) {
		e.resetCluster(t)
	})
	t.Run("a lightweight cluster (master1, worker1) created on the reset hosts at "+fromVersion, func(t *testing.T) {
		e.lightweightCluster(t, "master1", "worker1")
	})
}

// reportCreate prints a create's time, per phase, and its ratio to the bare
// critical path. A speed target (issue 16): reported here and in
// docs/benchmarks.md, not asserted, as timings on a shared 2-core machine
// vary by a fifth.
func reportCreate(name string, r result) {
	fmt.Printf("FIGURE %s: %s\n", name, r.duration.Round(time.Millisecond))
	for _, ev := range r.events {
		if ev["type"] == "phase_end" {
			fmt.Printf("FIGURE   phase %-14s %6.2fs  %v change(s)\n", ev["phase"], ev["duration_s"], ev["changes"])
		}
	}
	for _, ev := range r.events {
		if by, ok := ev["bytes_uploaded_by_host"].(map[string]any); ok && ev["type"] == "run_end" {
			hosts := slices.Sorted(maps.Keys(by))
			var parts []string
			for _, h := range hosts {
				parts = append(parts, fmt.Sprintf("%s %.1f MB", h, by[h].(float64)/1e6))
			}
			fmt.Printf("FIGURE   bytes uploaded by host: %s\n", strings.Join(parts, ", "))
		}
	}
	bare := bareCriticalPath(r)
	k4tPath := 0.0
	for _, p := range []string{"control-plane", "workers", "network"} {
		k4tPath += r.phaseDurations()[p]
	}
	ratio := r.duration.Seconds() / bare.Seconds()
	fmt.Printf("FIGURE bare-critical-path: %s; k4t create-cluster %s, ratio %.2f; k4t's control-plane+workers+network phases %.1fs, ratio %.2f\n",
		bare.Round(time.Millisecond), r.duration.Round(time.Millisecond), ratio, k4tPath, k4tPath/bare.Seconds())
}

// bareCriticalPath is what a person would wait for with everything else in
// place: kubeadm init, then each control plane join in turn, the worker
// joins side by side, then the pod network until every node is Ready (the
// network phase: writing the CNI config is part of it). The kubeadm times
// are the commands' own durations from k4t's JSON events.
func bareCriticalPath(r result) time.Duration {
	var init, cpJoins, workerJoin float64
	for _, ev := range r.events {
		if ev["type"] != "change" || ev["action"] != "applied" {
			continue
		}
		d, _ := ev["duration_s"].(float64)
		switch ev["message"] {
		case "kubeadm init":
			init = d
		case "kubeadm join --control-plane":
			cpJoins += d
		case "kubeadm join":
			workerJoin = max(workerJoin, d)
		}
	}
	secs := init + cpJoins + workerJoin + r.phaseDurations()["network"]
	return time.Duration(secs * float64(time.Second))
}

// webApp is a 3-replica Deployment answering HTTP on :8080 (coredns with
// whoami and health, image %[1]s) behind the Service web. Told to stop, a
// pod answers 10 s more (lameduck) while kube-proxy stops sending it
// connections, as a well-behaved service does: on the loaded 2-core lab,
// kube-proxy took longer than 5 s to drop an evicted pod (CI, 2026-12-02).
const webApp = `apiVersion: v1
kind: ConfigMap
metadata: {name: web}
data:
  Corefile: |
    .:5300 {
        whoami
        health :8080 {
            lameduck 10s
        }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: %[1]s
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        volumeMounts: [{name: conf, mountPath: /etc/coredns}]
        readinessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 1}
      volumes: [{name: conf, configMap: {name: web}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

const webManifest = webApp + `---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: master2
  tolerations: [{operator: Exists}]
  containers:
  - name: client
    image: %[2]s
    imagePullPolicy: Never
    command: ["sleep", "3600"]
`

func (e *env) deploymentTraffic(t *testing.T) {
	m := fmt.Sprintf(webManifest, imageRef(t, "coredns-image"), imageRef(t, "kube-proxy-image"))
	p := filepath.Join(t.TempDir(), "web.yaml")
	os.WriteFile(p, []byte(m), 0o644)
	e.mustKubectl("apply", "-f", p)
	if out, err := e.kubectl("rollout", "status", "deploy/web", "--timeout=180s"); err != nil {
		t.Fatalf("rollout: %v\n%s\n%s", err, out, e.mustKubectl("get", "pods", "-o", "wide"))
	}
	e.mustKubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
	pods := e.mustKubectl("get", "pods", "-l", "app=web", "-o", "wide", "--no-headers")
	t.Logf("\n%s", pods)
	for _, w := range []string{"worker1", "worker2"} {
		if !strings.Contains(pods, w) {
			t.Errorf("no web pod on %s", w)
		}
	}
	ip := e.mustKubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
	for _, target := range []string{ip, "web.default.svc.cluster.local"} {
		script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/80 && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && cat <&3`, target)
		var out string
		var err error
		for i := 0; i < 10; i++ {
			out, err = e.kubectl("exec", "client", "--", "bash", "-c", script)
			if err == nil && strings.Contains(out, "200 OK") {
				break
			}
			time.Sleep(2 * time.Second)
		}
		if err != nil || !strings.Contains(out, "200 OK") {
			t.Errorf("GET http://%s/health from a pod on master2: %v\n%s", target, err, out)
		} else {
			t.Logf("http://%s/health from master2: 200 OK", target)
		}
	}
}

// imageRef is the reference of an image artifact built for the lab.
func imageRef(t *testing.T, name string) string { return imageAt(t, toVersion, name) }

// imageAt is the reference of an image artifact of the set for version.
func imageAt(t *testing.T, version, name string) string {
	root := os.Getenv("K4T_ARTIFACT_CACHE")
	if root == "" {
		root = "/var/cache/k4t/artifacts"
	}
	b, err := os.ReadFile(filepath.Join(root, version, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "- name: ")
	for _, bl := range blocks {
		if strings.HasPrefix(bl, name+"\n") {
			for _, l := range strings.Split(bl, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "image: "); ok {
					return v
				}
			}
		}
	}
	t.Fatalf("no image %s in the artifact manifest", name)
	return ""
}

// clusterUnits maps host/unit to its start time and PID.
func (e *env) clusterUnits(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, h := range haHosts {
		units := "containerd kubelet"
		switch {
		case strings.HasPrefix(h, "slb"):
			units = "haproxy keepalived"
		case strings.HasPrefix(h, "master"):
			units = "etcd containerd kubelet"
		}
		m[h] = e.exec(h, "systemctl show -p ActiveEnterTimestampMonotonic,MainPID --value "+units)
	}
	return m
}

func (e *env) dumpDiagnostics(host string) {
	out, _ := e.tryExec(host, "journalctl -u kubelet --no-pager -n 30; crictl ps -a 2>&1 | head -20")
	e.t.Logf("%s diagnostics:\n%s", host, out)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lightweightCluster: one master, one worker, no slb; the endpoint is the
// master itself. Created on hosts TestHACluster reset (the proof that a
// create works there again), upgraded, restored from a snapshot, then its
// certificates renewed by the scheduled job.
func (e *env) lightweightCluster(t *testing.T, master, worker string) {
	hosts := only(mustHosts(t, e.lab), []string{master, worker})
	c, err := lab.Inventory(hosts, e.lab.KeyFile(), "")
	if err != nil {
		t.Fatal(err)
	}
	e.saveInventory(t, c)
	setVersion(t, e.inv, fromVersion)
	// Air gap: the lab's artifacts exported into one bundle, and the cluster
	// created from it alone (no build cache, no mirror, no download).
	bundle := filepath.Join(t.TempDir(), "k4t-"+fromVersion+".tar")
	ex := e.k4t("artifact", "export", "-f", e.inv, bundle)
	if ex.code != 0 {
		t.Fatalf("artifact export: exit %d\n%s\n%s", ex.code, ex.stderr, ex.stdout)
	}
	fi, err := os.Stat(bundle)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("FIGURE artifact-export: %s bundle of %.0f MB in %s\n", fromVersion, float64(fi.Size())/1e6, ex.duration.Round(100*time.Millisecond))
	if v := e.k4t("artifact", "verify", "--bundle", bundle); v.code != 0 || !strings.Contains(v.stdout, "kubeadm") {
		t.Fatalf("artifact verify --bundle: exit %d\n%s\n%s", v.code, v.stderr, v.stdout)
	}
	c.Spec.Artifacts = v1alpha1.Artifacts{Bundle: bundle}
	e.saveInventory(t, c)
	setVersion(t, e.inv, fromVersion)
	r := e.k4t("create", "cluster", "-f", e.inv, "--accept-new-hosts")
	if r.code != 0 {
		e.dumpDiagnostics(master)
		t.Fatalf("create lightweight cluster from the bundle: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 40))
	}
	reportCreate("create-lightweight-cluster-2-hosts", r)
	for _, ev := range r.events {
		if ev["type"] == "download" {
			t.Errorf("a create from a bundle downloaded: %v", ev)
			break
		}
	}
	// The upgrade below takes the lab's build cache again: a bundle holds one version.
	c.Spec.Artifacts = v1alpha1.Artifacts{Source: v1alpha1.ArtifactsBuild}
	e.saveInventory(t, c)
	setVersion(t, e.inv, fromVersion)
	nodes := e.mustKubectl("get", "nodes", "-o", "wide")
	t.Logf("\n%s", nodes)
	if n := strings.Count(nodes, " Ready "); n != 2 {
		t.Errorf("%d nodes Ready, want 2", n)
	}
	server := "https://" + hosts[0].Address + ":6443"
	if hosts[0].Name != master {
		server = "https://" + hosts[1].Address + ":6443"
	}
	mustContain(t, "kubeconfig server", e.mustKubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"), server)
	t.Run("upgrade "+fromVersion+" → "+toVersion, func(t *testing.T) {
		e.upgradeLightweight(t, server)
	})
	t.Run("etcd backup and restore: ConfigMap A back, B gone, every node Ready", func(t *testing.T) {
		e.etcdRestoreLightweight(t)
	})
	t.Run("the scheduled renew (threshold 400d: every leaf) renews every certificate; the API blip is measured", func(t *testing.T) {
		e.certsRenewLightweight(t, server)
	})
}

// nodeLabels adds a label to worker1 in the inventory, applies, then drops
// it: k4t removes its own label and keeps one set by someone else.
func (e *env) nodeLabels(t *testing.T) {
	labelled := e.writeInventory("labels.yaml", func(s string) string {
		return strings.Replace(s, "    - name: worker1\n", "    - name: worker1\n      labels:\n        k4t.io/e2e-disk: ssd\n", 1)
	})
	if r := e.k4t("apply", "-f", labelled); r.code != 0 || r.changes() != 1 {
		t.Fatalf("apply with a label: exit %d, %d change(s)\n%s\n%s", r.code, r.changes(), r.stderr, tail(r.stdout, 20))
	}
	e.mustKubectl("label", "node", "worker1", "team=e2e")
	if got := e.mustKubectl("get", "node", "worker1", "-o", "jsonpath={.metadata.labels.k4t\\.io/e2e-disk}"); got != "ssd" {
		t.Errorf("label k4t.io/e2e-disk on worker1 = %q, want ssd", got)
	}
	if r := e.k4t("apply", "-f", labelled); r.code != 0 || r.changes() != 0 {
		t.Errorf("re-apply with the label in place: exit %d, %d change(s)", r.code, r.changes())
	}
	if r := e.k4t("apply", "-f", e.inv); r.code != 0 || r.changes() != 1 {
		t.Fatalf("apply without the label: exit %d, %d change(s)\n%s", r.code, r.changes(), r.stderr)
	}
	labels := e.mustKubectl("get", "node", "worker1", "--show-labels", "--no-headers")
	if strings.Contains(labels, "e2e-disk") || !strings.Contains(labels, "team=e2e") {
		t.Errorf("after dropping the label: %s", labels)
	}
}

// noSecretsInTheOpen greps everything k4t wrote on the bastion outside
// secrets/ and pki/ (logs with every event, the journal, rendered/ copies,
// the inventory copy) for every secret it knows: the VRRP password, the
// bootstrap token, the SSH and sudo passwords, and the body of every
// private key. admin.conf is a
// credential by design and is skipped.
func (e *env) noSecretsInTheOpen(t *testing.T, passwords []string) {
	dir := filepath.Join(e.stateDir, "clusters", "lab")
	secrets := map[string]string{}
	for i, pw := range passwords {
		secrets[fmt.Sprintf("password %d", i+1)] = pw
	}
	names := []string{"bootstrap-token"}
	if inv, _ := os.ReadFile(e.inv); !strings.Contains(string(inv), "vrrpVersion: 3") {
		names = append(names, "vrrp-auth-pass") // VRRPv3 adverts carry no password
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", name))
		if err != nil || len(b) < 6 {
			t.Fatalf("secret %s: %v", name, err)
		}
		secrets[name] = string(b)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "pki", "*.key"))
	keys2, _ := filepath.Glob(filepath.Join(dir, "pki", "*", "*.key"))
	for _, k := range append(keys, keys2...) {
		b, _ := os.ReadFile(k)
		if lines := strings.Split(string(b), "\n"); len(lines) > 2 {
			secrets[filepath.Base(k)] = lines[1] // a line of the key's body
		}
	}
	scanned := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel == "secrets" || rel == "pki" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == "admin.conf" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned++
		for name, v := range secrets {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds the secret %s", rel, name)
			}
		}
		return nil
	})
	fmt.Printf("FIGURE secrets: %d secret(s) looked for in %d file(s) of the state dir (logs, journal, rendered/): none found\n", len(secrets), scanned)
}

// drainWorker: a drain a PodDisruptionBudget blocks stops at --timeout and
// names the budget, leaving the node cordoned; without the budget it
// evicts every pod but DaemonSets'; --dry-run changes nothing; uncordon
// makes the node schedulable again.
func (e *env) drainWorker(t *testing.T, node string) {
	e.mustKubectl("create", "poddisruptionbudget", "web", "--selector", "app=web", "--min-available", "3")
	start := time.Now()
	r := e.k4t("drain", node, "-f", e.inv, "--timeout", "15s")
	if r.code != 1 {
		t.Fatalf("drain blocked by a PDB: exit %d, want 1\n%s", r.code, r.stderr)
	}
	mustContain(t, "blocked drain", r.stderr, node+" / drain", "PodDisruptionBudget default/web", "--disable-eviction")
	fmt.Printf("FIGURE drain-blocked-by-pdb: stopped after %s naming default/web\n", time.Since(start).Round(time.Millisecond))
	if got := e.mustKubectl("get", "node", node, "-o", "jsonpath={.spec.unschedulable}"); got != "true" {
		t.Errorf("%s not cordoned after the blocked drain: %q", node, got)
	}
	e.mustKubectl("delete", "poddisruptionbudget", "web")
	if r := e.k4t("drain", "worker2", "-f", e.inv, "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "cordon worker2 and evict") {
		t.Errorf("drain --dry-run: exit %d\n%s", r.code, tail(r.stdout, 10))
	}
	if got := e.mustKubectl("get", "node", "worker2", "-o", "jsonpath={.spec.unschedulable}"); got == "true" {
		t.Errorf("drain --dry-run cordoned worker2")
	}
	start = time.Now()
	if r := e.k4t("drain", node, "-f", e.inv); r.code != 0 {
		t.Fatalf("drain: exit %d\n%s", r.code, r.stderr)
	}
	fmt.Printf("FIGURE drain-%s: %s\n", node, time.Since(start).Round(time.Millisecond))
	left := e.mustKubectl("get", "pods", "-A", "--no-headers", "--field-selector", "spec.nodeName="+node, "-o", "custom-columns=NAME:.metadata.name,OWNER:.metadata.ownerReferences[0].kind")
	for _, l := range strings.Split(left, "\n") {
		if l != "" && !strings.HasSuffix(strings.TrimSpace(l), "DaemonSet") {
			t.Errorf("pod left on the drained %s: %s", node, l)
		}
	}
	if out, err := e.kubectl("rollout", "status", "deploy/web", "--timeout=120s"); err != nil {
		t.Errorf("web after the drain: %v\n%s", err, out)
	}
	if r := e.k4t("uncordon", node, "-f", e.inv); r.code != 0 {
		t.Fatalf("uncordon: exit %d\n%s", r.code, r.stderr)
	}
	if got := e.mustKubectl("get", "node", node, "-o", "jsonpath={.spec.unschedulable}"); got == "true" {
		t.Errorf("%s still cordoned after uncordon", node)
	}
}
