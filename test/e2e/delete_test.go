package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/lab"
)

// Issue 11's `k4t delete node` on the HA cluster. The subtests run in this
// order, each leaving the cluster usable for the next: refused without
// quorum, master3 deleted under a probe, worker2 deleted with a
// Deployment's pods on it, then worker1 deleted with its host stopped.

// refuseDeleteWithoutQuorum stops master2's host and asks to delete
// master3: the 1 healthy member left could not make a quorum of 2. master2
// is started again, and waited for, even when the test fails.
func (e *env) refuseDeleteWithoutQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.lab.Stop(ctx, "master2"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.lab.Start(ctx, "master2"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			out, err := e.etcdctl("master1", "endpoint health -w simple")
			nodes, _ := e.kubectl("get", "node", "master2", "--no-headers")
			up := e.exec("slb1", "echo 'show stat' | socat stdio /run/haproxy/admin.sock | awk -F, '$2 == \"master2\" {print $18}'")
			if err == nil && strings.Count(out, "is healthy") == 3 && strings.Contains(nodes, " Ready ") && up == "UP" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("master2 not back 2 minutes after its start: etcd %q, node %q, HAProxy %q", out, nodes, up)
			}
			time.Sleep(time.Second)
		}
	}()
	e.statusDegraded(t, "master2")
	r := e.k4t("delete", "node", "master3", "--yes", "-f", e.inv)
	if r.code == 0 {
		t.Fatalf("delete master3 with master2 stopped succeeded:\n%s", tail(r.stdout, 20))
	}
	mustContain(t, "delete without quorum", r.stderr, "refusing to remove master3 from etcd", "1 of the 2 members left are healthy")
	if out, _ := e.etcdctl("master1", "member list -w simple"); strings.Count(out, "started") != 3 {
		t.Errorf("the refused delete changed etcd's members:\n%s", out)
	}
}

// deleteMaster deletes master3 while a probe calls the API through the VIP
// every 200 ms, killing the first run with kill -9 right after etcd's member
// went and running it again: etcd keeps 2 of 2 healthy members, HAProxy on both slb
// hosts lists exactly master1 and master2, the other kube-apiservers no
// longer name master3's etcd, and master3's host is reset.
func (e *env) deleteMaster(t *testing.T) {
	dry := e.k4t("delete", "node", "master3", "--dry-run", "-f", e.inv)
	if dry.code != 0 {
		t.Fatalf("delete --dry-run: exit %d\n%s\n%s", dry.code, dry.stderr, tail(dry.stdout, 20))
	}
	mustContain(t, "delete master3 --dry-run", dry.stdout, "take master3 out of HAProxy", "etcd member remove", "kubeadm upgrade node phase control-plane")
	p := startProbe(t, e.kubeconfig(), "https://"+vip+":6443")
	stop := make(chan struct{})
	h, watched := e.watchHealth([]string{"master1", "master2"}, stop)
	// kill -9 once etcd's member is removed; the re-run must finish the job.
	killed := e.k4tWatched(func(ev map[string]any, kill func()) {
		if ev["type"] == "change" && ev["action"] == "applied" && strings.HasPrefix(fmt.Sprint(ev["message"]), "etcd member remove") {
			kill()
		}
	}, "delete", "node", "master3", "--yes", "-f", e.inv)
	if killed.code == 0 {
		t.Fatalf("the delete ended before it was killed:\n%s", tail(killed.stdout, 20))
	}
	r := e.k4t("delete", "node", "master3", "--yes", "-f", e.inv)
	close(stop)
	<-watched
	calls, failures, longest := p.finish()
	fmt.Printf("FIGURE delete-master: killed after %s (member removed), re-run %s; probe through the VIP every 200ms: %d calls, %d failures, longest gap %s; fewest healthy etcd members %d/2\n",
		killed.duration.Round(100*time.Millisecond), r.duration.Round(100*time.Millisecond), calls, len(failures), longest.Round(time.Millisecond), h.minEtcd)
	if r.code != 0 {
		t.Fatalf("delete master3: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 40))
	}
	if len(failures) > 0 {
		t.Errorf("%d API call(s) through the VIP failed during the delete:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	if h.minEtcd < 2 {
		t.Errorf("only %d of the 2 members left were healthy at one point", h.minEtcd)
	}
	members, _ := e.tryExec("master1", "ETCDCTL_API=3 etcdctl --endpoints=https://10.77.0.13:2379,https://10.77.0.14:2379 --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key member list -w simple")
	if strings.Count(members, "started") != 2 || strings.Contains(members, "master3") {
		t.Errorf("etcd members after the delete:\n%s", members)
	}
	for _, slb := range []string{"slb1", "slb2"} {
		got := e.exec(slb, "echo 'show stat' | socat stdio /run/haproxy/admin.sock | awk -F, '$2 ~ /^master/ {print $2, $18}' | sort | tr '\\n' ' '")
		if got != "master1 UP master2 UP" {
			t.Errorf("%s: HAProxy has %q, want master1 and master2 UP", slb, got)
		}
	}
	for _, m := range []string{"master1", "master2"} {
		if out := e.exec(m, "grep -c 10.77.0.15:2379 /etc/kubernetes/manifests/kube-apiserver.yaml || true"); out != "0" {
			t.Errorf("%s's kube-apiserver still names master3's etcd", m)
		}
	}
	if nodes := e.mustKubectl("get", "nodes", "--no-headers"); strings.Contains(nodes, "master3") {
		t.Errorf("Node master3 still there:\n%s", nodes)
	}
	if out := e.exec("master3", "ls -d /etc/kubernetes /var/lib/etcd /etc/systemd/system/etcd.service 2>/dev/null; true"); out != "" {
		t.Errorf("master3 not reset: %s", out)
	}
	// hosts.yaml still lists master3: plan says so.
	plan := e.k4t("plan", "-f", e.inv)
	mustContain(t, "plan after the delete", plan.stdout+plan.stderr, "the inventory and the cluster disagree: master3 was deleted")
}

// deleteWorker deletes worker2, which runs pods of the web Deployment,
// while a pod on master2 calls the Service every second.
func (e *env) deleteWorker(t *testing.T) {
	pods := e.mustKubectl("get", "pods", "-l", "app=web", "-o", "wide", "--no-headers")
	if !strings.Contains(pods, "worker2") {
		t.Fatalf("no web pod on worker2 to move:\n%s", pods)
	}
	// The drain of worker1 earlier moved every web pod here. A service
	// that must answer through a drain says so with a budget: without
	// one, all three pods were evicted at once, their lameduck ran out
	// before the new ones were Ready, and 2 of 20 calls failed (found
	// here, 2026-12-02). With it, the drain evicts one at a time.
	e.mustKubectl("create", "poddisruptionbudget", "web-available", "--selector", "app=web", "--max-unavailable", "1")
	defer e.kubectl("delete", "poddisruptionbudget", "web-available")
	t.Logf("web pods before the delete:\n%s", pods)
	// the client pod runs on master2, which an earlier subtest restarted
	e.mustKubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
	ip := e.mustKubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
	// The script says whether the Service answered within 5 s (a connect to
	// a pod that is gone is refused or never answered); a call whose
	// kubectl exec itself failed (the API or master2's kubelet busy) says
	// nothing of the Service and is counted apart. At 2 s, a CI run at load
	// 24 failed calls here (2026-12-02) whose cause its log did not keep.
	script := fmt.Sprintf(`if timeout 5 bash -c 'exec 3<>/dev/tcp/%s/80 && printf "GET /health HTTP/1.0\r\n\r\n" >&3 && cat <&3' | grep -q '200 OK'; then echo SVC-OK; else echo SVC-FAIL; fi`, ip)
	var mu sync.Mutex
	calls, noExec := 0, 0
	var failed []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			sent := time.Now()
			out, err := e.kubectl("exec", "client", "--", "bash", "-c", script)
			at := fmt.Sprintf("%s (+%s)", sent.Format("15:04:05.0"), sent.Sub(start).Round(100*time.Millisecond))
			mu.Lock()
			calls++
			switch {
			case strings.Contains(out, "SVC-OK"):
			case strings.Contains(out, "SVC-FAIL"):
				failed = append(failed, at)
			default:
				noExec++
				t.Logf("at %s the exec did not run (not counted): %v %s", at, err, out)
			}
			mu.Unlock()
			time.Sleep(time.Second)
		}
	}()
	r := e.k4t("delete", "node", "worker2", "--yes", "-f", e.inv)
	cancel()
	<-done
	fmt.Printf("FIGURE delete-worker: %s; Service called from a pod every 1s: %d calls, %d failed, %d exec(s) that did not run\n",
		r.duration.Round(100*time.Millisecond), calls, len(failed), noExec)
	if r.code != 0 {
		t.Fatalf("delete worker2: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 40))
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d calls to the Service failed while worker2 was deleted, sent at %s; the delete's phases began at %s",
			len(failed), calls, strings.Join(failed, ", "), phaseStarts(r, start))
	}
	if noExec > calls/2 {
		t.Errorf("%d of %d execs in the client pod did not run: the Service was hardly probed", noExec, calls)
	}
	if out, err := e.kubectl("rollout", "status", "deploy/web", "--timeout=120s"); err != nil {
		t.Errorf("web not available again: %v\n%s", err, out)
	}
	if pods := e.mustKubectl("get", "pods", "-l", "app=web", "-o", "wide", "--no-headers"); strings.Contains(pods, "worker2") {
		t.Errorf("web pods still on worker2:\n%s", pods)
	}
}

// forceDeleteStopped stops worker1's host and deletes it with --force: the
// Node goes, the reset is skipped with a warning. The host is started
// again for the reset that follows.
func (e *env) forceDeleteStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.lab.Stop(ctx, "worker1"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.lab.Start(ctx, "worker1"); err != nil {
			t.Fatal(err)
		}
	}()
	if r := e.k4t("delete", "node", "worker1", "--yes", "-f", e.inv); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("delete of a stopped host without --force: exit %d\n%s", r.code, r.stderr)
	}
	r := e.k4t("delete", "node", "worker1", "--force", "--yes", "-f", e.inv)
	fmt.Printf("FIGURE delete-unreachable: %s\n", r.duration.Round(100*time.Millisecond))
	if r.code != 0 {
		t.Fatalf("delete --force: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 40))
	}
	mustContain(t, "delete --force", r.stdout+r.stderr, "its reset is skipped")
	if nodes := e.mustKubectl("get", "nodes", "--no-headers"); strings.Contains(nodes, "worker1") {
		t.Errorf("Node worker1 still there:\n%s", nodes)
	}
}

// kubeconfig is the state dir's admin kubeconfig.
func (e *env) kubeconfig() string { return e.stateDir + "/clusters/lab/admin.conf" }

// replaceMaster replaces the deleted master3 by master4, as etcd's guide
// does it: hosts.yaml drops master3 and lists master4, and `k4t apply`
// adds it as an etcd learner, promotes it once it has caught up, joins it
// to the control plane and both load balancers, while a probe calls the API
// through the VIP every 200 ms.
func (e *env) replaceMaster(t *testing.T) {
	c, problems, err := v1alpha1.Load(e.inv)
	if errs, _ := v1alpha1.Count(problems); err != nil || errs > 0 {
		t.Fatalf("loading %s: %v %v", e.inv, err, problems)
	}
	spare, err := lab.Inventory(only(mustHosts(t, e.lab), []string{"slb1", "slb2", "master1", "master2", spareMaster, "worker1", "worker2"}), e.lab.KeyFile(), vip)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Spec.Hosts {
		if c.Spec.Hosts[i].Name == "master3" {
			c.Spec.Hosts[i] = *spare.Host(spareMaster)
		}
	}
	e.saveInventory(t, c)
	m4 := spare.Host(spareMaster).Address
	p := startProbe(t, e.kubeconfig(), "https://"+vip+":6443")
	r := e.k4t("apply", "--accept-new-hosts", "-f", e.inv) // master4 is a host k4t has not seen
	calls, failures, longest := p.finish()
	fmt.Printf("FIGURE replace-master (add master4): %s; probe through the VIP every 200ms: %d calls, %d failures, longest gap %s\n",
		r.duration.Round(100*time.Millisecond), calls, len(failures), longest.Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("apply with master4: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 40))
	}
	mustContain(t, "apply with master4", r.stdout, "member add master4", "--learner", "member promote master4")
	if len(failures) > 0 {
		t.Errorf("%d API call(s) through the VIP failed while master4 joined:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	etcd := "ETCDCTL_API=3 etcdctl --endpoints=https://10.77.0.13:2379,https://10.77.0.14:2379,https://" + m4 + ":2379 " +
		"--cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key "
	members := e.exec("master1", etcd+"member list -w simple")
	if strings.Count(members, ", started, ") != 3 || !strings.Contains(members, "master4") || strings.Contains(members, ", true") {
		t.Errorf("etcd members, want master1, master2, master4, none a learner:\n%s", members)
	}
	if out := e.exec("master1", etcd+"endpoint health -w simple"); strings.Count(out, "is healthy") != 3 {
		t.Errorf("etcd health:\n%s", out)
	}
	for _, slb := range []string{"slb1", "slb2"} {
		got := e.exec(slb, "echo 'show stat' | socat stdio /run/haproxy/admin.sock | awk -F, '$2 ~ /^master/ {print $2, $18}' | sort | tr '\\n' ' '")
		if got != "master1 UP master2 UP master4 UP" {
			t.Errorf("%s: HAProxy has %q, want master1, master2 and master4 UP", slb, got)
		}
	}
	if n := e.exec(spareMaster, "grep -o -E '(10.77.0.13|10.77.0.14|"+m4+"):2379' /etc/kubernetes/manifests/kube-apiserver.yaml | sort -u | wc -l"); n != "3" {
		t.Errorf("master4's kube-apiserver names %s etcd members, want 3", n)
	}
	if out, err := e.kubectl("wait", "--for=condition=Ready", "node/"+spareMaster, "--timeout=60s"); err != nil {
		t.Errorf("master4 not Ready: %v\n%s", err, out)
	}
}

// addWorker adds the deleted worker2 back with `k4t apply` (hosts.yaml
// still lists it): it joins through the VIP, is Ready and runs a pod.
func (e *env) addWorker(t *testing.T) {
	r := e.k4t("apply", "-f", e.inv)
	fmt.Printf("FIGURE add-worker: %s\n", r.duration.Round(100*time.Millisecond))
	if r.code != 0 {
		t.Fatalf("apply with worker2 back: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 40))
	}
	pod := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"on-worker2"},"spec":{"nodeName":"worker2","containers":[{"name":"c","image":%q,"imagePullPolicy":"Never","command":["sleep","600"]}]}}`,
		imageRef(t, "kube-proxy-image"))
	// Not t.TempDir(): the subtest's name, in that path, may hold commas,
	// which kubectl -f takes as separators.
	f, err := os.CreateTemp("", "k4t-e2e-pod-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	f.WriteString(pod)
	f.Close()
	if out, err := e.kubectl("apply", "-f", f.Name()); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if out, err := e.kubectl("wait", "--for=condition=Ready", "pod/on-worker2", "--timeout=90s"); err != nil {
		t.Errorf("no pod runs on worker2: %v\n%s", err, out)
	}
	e.kubectl("delete", "pod", "on-worker2", "--wait=false")
}

// phaseStarts lists when each phase of r began, as clock time and since
// start: "drain 12:28:31.2 (+1.3s), …".
func phaseStarts(r result, start time.Time) string {
	var l []string
	for _, ev := range r.events {
		ts, _ := ev["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if ev["type"] != "phase_start" || err != nil {
			continue
		}
		l = append(l, fmt.Sprintf("%v %s (+%s)", ev["phase"], at.Format("15:04:05.0"), at.Sub(start).Round(100*time.Millisecond)))
	}
	return strings.Join(l, ", ")
}
