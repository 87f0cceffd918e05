package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// certRow is one line of `k4t certs check-expiration -o json`.
type certRow struct {
	Host     string    `json:"host"`
	Name     string    `json:"certificate"`
	CA       string    `json:"ca"`
	IsCA     bool      `json:"isCA"`
	NotAfter time.Time `json:"notAfter"`
	Err      string    `json:"error"`
}

// checkCerts runs check-expiration and returns its rows by "host certificate".
func (e *env) checkCerts(t *testing.T) (map[string]certRow, result) {
	t.Helper()
	r := e.k4t("certs", "check-expiration", "-f", e.inv)
	rows := map[string]certRow{}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var row certRow
		if json.Unmarshal(sc.Bytes(), &row) == nil && row.Host != "" {
			rows[row.Host+" "+row.Name] = row
		}
	}
	if len(rows) == 0 {
		t.Fatalf("check-expiration printed no rows: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 20))
	}
	return rows, r
}

// probe calls the API every 200 ms on a fresh connection (so every call goes through the
// load balancer's choice again) and records failures, the calls that were only slow, and
// the longest gap between successful calls.
type probe struct {
	mu       sync.Mutex
	calls    int
	failures []string
	slow     []string // answered, but after more than slowCall
	lastOK   time.Time
	longest  time.Duration
	stop     chan struct{}
	done     chan struct{}
}

// apiClient is an HTTP client with kubeconfig's credentials that opens a
// fresh connection for every call (so each goes through the load
// balancer's choice again): in-process, where a kubectl per call would cost
// a process start on a loaded lab.
func apiClient(t *testing.T, kubeconfig string, timeout time.Duration) *http.Client {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	user, cluster := cfg.AuthInfos[ctx.AuthInfo], cfg.Clusters[ctx.Cluster]
	pair, err := tls.X509KeyPair(user.ClientCertificateData, user.ClientKeyData)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cluster.CertificateAuthorityData)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
	}}
}

func startProbe(t *testing.T, kubeconfig, server string) *probe {
	t.Helper()
	// A refused or reset connection, or an error status, fails at once; a
	// call with no answer in callTimeout fails too. A slower answer that
	// comes is counted apart and printed: the API answered. Timeouts of 2 s
	// and then 5 s failed calls that were only slow on a lab at load 24 on
	// 2 cores (4 of 4,255 upgrade calls; then 1 of ~4,000 in CI, 2026-12-02),
	// where kubectl, which sets no timeout, would have had its answer.
	client := apiClient(t, kubeconfig, callTimeout)
	p := &probe{stop: make(chan struct{}), done: make(chan struct{}), lastOK: time.Now()}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			// A quorum read: it needs kube-apiserver and etcd.
			sent := time.Now()
			resp, err := client.Get(server + "/api/v1/namespaces/default")
			now := time.Now()
			ok := err == nil && resp.StatusCode == http.StatusOK
			if resp != nil {
				resp.Body.Close()
			}
			p.mu.Lock()
			p.calls++
			if took := now.Sub(sent); ok && took > slowCall {
				p.slow = append(p.slow, fmt.Sprintf("%s took %s", sent.Format("15:04:05.000"), took.Round(time.Millisecond)))
			}
			if ok {
				p.longest = max(p.longest, now.Sub(p.lastOK))
				p.lastOK = now
			} else {
				msg := fmt.Sprint(err)
				if err == nil {
					msg = resp.Status
				}
				p.failures = append(p.failures, now.Format("15:04:05.000")+" "+msg)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// A probe call fails with no answer in callTimeout; one answered after
// slowCall is counted as slow.
const callTimeout, slowCall = 15 * time.Second, 2 * time.Second

// slowCalls lists the calls that were answered after more than slowCall.
func (p *probe) slowCalls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.slow...)
}

func (p *probe) finish() (calls int, failures []string, longest time.Duration) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, p.failures, max(p.longest, time.Since(p.lastOK))
}

// health is what watchHealth saw: the fewest healthy etcd members; the fewest
// Ready nodes, where a node not Ready in one sample only (about 2 s) still
// counts as Ready and is printed (a restarted kubelet reports NotReady until
// its first container runtime check, kubelet's own blip); the most nodes not
// Ready in one sample, forgiving none; and each node's longest time not Ready
// (first to last sample that saw it so, plus the sample gap).
type health struct {
	minEtcd, minReady, mostNotReady int
	notReadyFor                     map[string]time.Duration
}

// longestNotReady is the node that was not Ready the longest, and how long.
func (h *health) longestNotReady() (string, time.Duration) {
	node, d := "", time.Duration(0)
	for n, x := range h.notReadyFor {
		if x > d {
			node, d = n, x
		}
	}
	return node, d
}

// watchHealth samples etcd health and node readiness until stopped; read the
// result once done is closed.
func (e *env) watchHealth(members []string, stop <-chan struct{}) (*health, chan struct{}) {
	h := &health{minEtcd: len(members), minReady: 1 << 30, notReadyFor: map[string]time.Duration{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		notReady := map[string]int{}    // consecutive samples
		since := map[string]time.Time{} // first sample of the current NotReady run
		for {
			out, _ := e.tryExec(members[0], "ETCDCTL_API=3 etcdctl --endpoints="+etcdEndpoints(members)+
				" --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key --dial-timeout=2s endpoint health -w simple")
			h.minEtcd = min(h.minEtcd, strings.Count(out, "is healthy"))
			if nodes, err := e.kubectl("get", "nodes", "--no-headers"); err == nil {
				ready, not := 0, 0
				now := time.Now()
				for _, l := range strings.Split(nodes, "\n") {
					f := strings.Fields(l)
					if len(f) < 2 {
						continue
					}
					if f[1] == "Ready" || strings.HasPrefix(f[1], "Ready,") {
						notReady[f[0]] = 0
						delete(since, f[0])
						ready++
						continue
					}
					not++
					if _, ok := since[f[0]]; !ok {
						since[f[0]] = now
					}
					h.notReadyFor[f[0]] = max(h.notReadyFor[f[0]], now.Sub(since[f[0]])+2*time.Second)
					if notReady[f[0]]++; notReady[f[0]] == 1 {
						ready++ // one sample: see above
						fmt.Printf("FIGURE node-not-ready-blip: %s %s at %s\n", f[0], f[1], now.UTC().Format("15:04:05.0"))
					}
				}
				h.minReady = min(h.minReady, ready)
				h.mostNotReady = max(h.mostNotReady, not)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	return h, done
}

// allNodesReady: every node Ready now (within 30 s).
func (e *env) allNodesReady(t *testing.T) {
	t.Helper()
	if out, err := e.kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=30s"); err != nil {
		t.Errorf("nodes not Ready: %v\n%s", err, out)
	}
}

func etcdEndpoints(members []string) string {
	ips := map[string]string{"master1": "10.77.0.13", "master2": "10.77.0.14", "master3": "10.77.0.15"}
	var eps []string
	for _, m := range members {
		eps = append(eps, "https://"+ips[m]+":2379")
	}
	return strings.Join(eps, ",")
}

// runScheduledJob installs the schedule and runs its job now, as the timer or cron would.
// Where this machine has neither systemd nor cron, schedule says so and still writes the
// job script, which is what is run.
func (e *env) runScheduledJob(t *testing.T, renewBefore string) time.Duration {
	t.Helper()
	r := e.k4t("certs", "schedule", "-f", e.inv, "--every", "1h", "--renew-before", renewBefore)
	t.Cleanup(func() { e.k4t("certs", "schedule", "--remove", "-f", e.inv) })
	if r.code != 0 && !strings.Contains(r.stderr, "no cron daemon") {
		t.Fatalf("certs schedule: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("certs schedule: %s %s", strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
	dir := filepath.Join(e.stateDir, "clusters", "lab")
	job := filepath.Join(dir, "certs-job.sh")
	start := time.Now()
	out, err := exec.Command("sh", job).CombinedOutput()
	took := time.Since(start)
	log, _ := os.ReadFile(filepath.Join(dir, "logs", "certs-renew.log"))
	if err != nil {
		t.Fatalf("scheduled job: %v\n%s\nlog:\n%s", err, out, tail(string(log), 60))
	}
	t.Logf("scheduled job took %s; log ends:\n%s", took.Round(time.Second), tail(string(log), 15))
	st := e.k4t("certs", "schedule", "--status", "-f", e.inv)
	if !strings.Contains(st.stdout, `"exitCode":0`) {
		t.Errorf("schedule --status does not show the successful run:\n%s", st.stdout)
	}
	return took
}

// assertRenewed checks that every leaf certificate seen before has a later NotAfter now.
func assertRenewed(t *testing.T, before, after map[string]certRow) {
	t.Helper()
	renewed, hosts := 0, map[string]bool{}
	for k, b := range before {
		if b.IsCA || b.Err != "" {
			continue
		}
		a, ok := after[k]
		switch {
		case !ok:
			t.Errorf("%s: gone after the renewal", k)
		case a.Err != "":
			t.Errorf("%s: %s after the renewal", k, a.Err)
		case !a.NotAfter.After(b.NotAfter):
			t.Errorf("%s: NotAfter %s not renewed (was %s)", k, a.NotAfter.Format(time.RFC3339), b.NotAfter.Format(time.RFC3339))
		default:
			renewed++
			hosts[a.Host] = true
		}
	}
	fmt.Printf("FIGURE certs-renewed: %d leaf certificates on %d hosts (bastion included)\n", renewed, len(hosts))
}

// certsRenewHA: on the HA cluster, the scheduled job with a threshold beyond
// every leaf's life (400d) renews every leaf on every host one master at a
// time while a probe through the VIP sees no failure, etcd keeps quorum and
// every node stays Ready.
func (e *env) certsRenewHA(t *testing.T) {
	before, cr := e.checkCerts(t)
	if cr.code != 0 {
		t.Fatalf("check-expiration on a fresh cluster: exit %d\n%s\n%s", cr.code, cr.stderr, tail(cr.stdout, 40))
	}
	for _, want := range []string{"master1 /etc/kubernetes/super-admin.conf#user/kubernetes-super-admin", "master2 /etc/etcd/pki/peer.crt",
		"worker2 /var/lib/kubelet/pki/kubelet-client-current.pem", "bastion admin.conf#user/kubernetes-admin"} {
		if _, ok := before[want]; !ok {
			t.Errorf("check-expiration has no row %q", want)
		}
	}
	// A dry run lists the roll and changes nothing: every master stays UP in HAProxy.
	dry := e.k4t("certs", "renew", "--all", "--dry-run", "-f", e.inv)
	if dry.code != 0 {
		t.Fatalf("certs renew --dry-run: exit %d\n%s\n%s", dry.code, dry.stderr, tail(dry.stdout, 20))
	}
	mustContain(t, "certs renew --dry-run", dry.stdout, "take master2 out of HAProxy on every slb", "kubeadm certs renew", "restart etcd", "renew 8 etcd certificate(s)")
	if s := e.exec("slb1", "echo 'show stat' | socat stdio /run/haproxy/admin.sock | awk -F, '$2 ~ /^master/ && $18 == \"UP\"' | wc -l"); s != "3" {
		t.Errorf("after a dry run slb1's HAProxy has %s servers UP, want 3", s)
	}
	kc := filepath.Join(e.stateDir, "clusters", "lab", "admin.conf")
	p := startProbe(t, kc, "https://"+vip+":6443")
	stop := make(chan struct{})
	h, watched := e.watchHealth([]string{"master1", "master2", "master3"}, stop)
	took := e.runScheduledJob(t, "400d")
	close(stop)
	<-watched
	calls, failures, longest := p.finish()
	fmt.Printf("FIGURE certs-renew-ha: job %s; probe through the VIP every 200ms: %d calls, %d failures, longest gap %s\n",
		took.Round(time.Second), calls, len(failures), longest.Round(time.Millisecond))
	node, notReady := h.longestNotReady()
	fmt.Printf("FIGURE certs-renew-ha: fewest healthy etcd members %d/3, most nodes not Ready at once %d, longest not Ready %s %s\n",
		h.minEtcd, h.mostNotReady, node, notReady.Round(time.Second))
	if len(failures) > 0 {
		t.Errorf("%d API call(s) through the VIP failed during the renewal:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	if h.minEtcd < 2 {
		t.Errorf("etcd lost quorum: %d healthy member(s) at one point", h.minEtcd)
	}
	// Each kubelet restarts once; its NotReady (kubelet's own, until its first
	// runtime check) lasted several seconds at load 24 (CI, 2026-12-02). The
	// roll waits for each node to be Ready before the next, so never two.
	if h.mostNotReady > 1 {
		t.Errorf("%d nodes not Ready at once: the roll goes one node at a time", h.mostNotReady)
	}
	if notReady > time.Minute {
		t.Errorf("%s not Ready for %s after its kubelet's restart", node, notReady.Round(time.Second))
	}
	e.allNodesReady(t) // a blip the sampling forgave must be over
	after, ar := e.checkCerts(t)
	if ar.code != 0 {
		t.Errorf("check-expiration after the renewal: exit %d\n%s", ar.code, ar.stderr)
	}
	assertRenewed(t, before, after)
	if out, err := e.etcdctl("master1", "endpoint health -w simple"); err != nil || strings.Count(out, "is healthy") != 3 {
		t.Errorf("etcd after the renewal: %v\n%s", err, out)
	}
	if _, err := e.kubectl("get", "--raw", "/readyz"); err != nil {
		t.Errorf("the refreshed bastion kubeconfig does not work: %v", err)
	}
	// A second run finds nothing within 1h and touches nothing.
	if r := e.k4t("certs", "renew", "--if-expiring-within", "1h", "-f", e.inv); r.code != 0 || !strings.Contains(r.stdout, "nothing to renew") {
		t.Errorf("renew with nothing expiring: exit %d\n%s", r.code, tail(r.stdout, 10))
	}
	t.Run("a renew killed while master2 is out of HAProxy: the next renew puts it back", func(t *testing.T) {
		e.killRenewWhileOut(t, "master2")
	})
}

// killRenewWhileOut kills `certs renew --all` with kill -9 once master is
// out of HAProxy on both slb hosts, then runs a renew that finds nothing
// expiring: it must still put master back.
func (e *env) killRenewWhileOut(t *testing.T, master string) {
	disabled := 0
	e.k4tWatched(func(ev map[string]any, kill func()) {
		if ev["type"] == "change" && ev["action"] == "applied" && ev["message"] == "disable "+master+" in HAProxy" {
			if disabled++; disabled == 2 {
				kill()
			}
		}
	}, "certs", "renew", "--all", "-f", e.inv)
	if disabled < 2 {
		t.Fatalf("renew ended before %s was out of HAProxy on both slb hosts", master)
	}
	status := func(slb string) string {
		return e.exec(slb, "echo 'show stat' | socat stdio /run/haproxy/admin.sock | awk -F, '$2==\""+master+"\" {print $18}'")
	}
	if s := status("slb1"); s != "MAINT" {
		t.Fatalf("after the kill, HAProxy on slb1 has %s %q, want MAINT", master, s)
	}
	r := e.k4t("certs", "renew", "--if-expiring-within", "1h", "-f", e.inv)
	if r.code != 0 {
		t.Fatalf("renew after the kill: exit %d\n%s", r.code, r.stderr)
	}
	mustContain(t, "renew after the kill", r.stdout, "put "+master+" back into HAProxy (an interrupted renew left it out)", "nothing to renew")
	for _, slb := range []string{"slb1", "slb2"} {
		deadline := time.Now().Add(30 * time.Second)
		for s := status(slb); s != "UP"; s = status(slb) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: HAProxy has %s %q 30s after the renew, want UP", slb, master, s)
			}
			time.Sleep(time.Second)
		}
	}
	fmt.Printf("FIGURE certs-renew-killed: the next renew put %s back into HAProxy in %s\n", master, r.duration.Round(time.Millisecond))
}

// certsRenewLightweight: on the lightweight cluster (one master, one worker,
// no slb), the scheduled job with a threshold beyond every leaf's life
// (400d) renews them all; the API blip while the only kube-apiserver and
// etcd restart is measured and printed.
func (e *env) certsRenewLightweight(t *testing.T, server string) {
	before, cr := e.checkCerts(t)
	if cr.code != 0 {
		t.Fatalf("check-expiration: exit %d\n%s", cr.code, tail(cr.stdout, 40))
	}
	kc := filepath.Join(e.stateDir, "clusters", "lab", "admin.conf")
	p := startProbe(t, kc, server)
	took := e.runScheduledJob(t, "400d")
	calls, failures, longest := p.finish()
	fmt.Printf("FIGURE certs-renew-lightweight: job %s; probe every 200ms: %d calls, %d failures, API blip (longest gap) %s\n",
		took.Round(time.Second), calls, len(failures), longest.Round(time.Millisecond))
	after, ar := e.checkCerts(t)
	if ar.code != 0 {
		t.Errorf("check-expiration after the renewal: exit %d\n%s", ar.code, ar.stderr)
	}
	assertRenewed(t, before, after)
	nodes := e.mustKubectl("get", "nodes", "--no-headers")
	if n := strings.Count(nodes, " Ready "); n != 2 {
		t.Errorf("%d nodes Ready after the renewal, want 2:\n%s", n, nodes)
	}
}
