package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// certCluster is an HA cluster of fake hosts that hold the certificates a real one holds
// and answer the commands of the renewal roll like real hosts would.
type certCluster struct {
	t     *testing.T
	run   *engine.Run
	fakes map[string]*transport.Fake
	coll  *events.Collect

	mu       sync.Mutex
	log      []string            // "host: what", in order
	disabled map[string][]string // slb -> masters disabled in HAProxy
	maxOut   int                 // most masters out of HAProxy at once on one slb
	stuck    map[string]bool     // host/pod: kubelet does not start a new container
	gen      map[string]int      // host/pod container generation
	failOn   map[string]string   // host -> command prefix that fails
	leader   uint64              // etcd leader's member id (index+1)
	// The cluster's Nodes: a kubelet restart posts a new Ready status,
	// NotReady where notReady says so (kubelet's own blip, for good).
	client   *fake.Clientset
	notReady map[string]bool
}

func (cc *certCluster) note(host, what string) {
	cc.log = append(cc.log, host+": "+what)
}

func newCertCluster(t *testing.T, hosts ...string) *certCluster {
	t.Helper()
	c := &v1alpha1.Cluster{Metadata: v1alpha1.ObjectMeta{Name: "t"}}
	for i, n := range hosts {
		role := v1alpha1.Role(strings.TrimRight(n, "0123456789"))
		ip := fmt.Sprintf("10.0.0.%d", 11+i)
		c.Spec.Hosts = append(c.Spec.Hosts, v1alpha1.Host{Name: n, Address: ip, InternalAddress: ip, Roles: []v1alpha1.Role{role}})
	}
	c.Spec.ControlPlaneEndpoint = v1alpha1.Endpoint{Address: "10.0.0.100", Port: 6443}
	if len(c.SLBs()) == 0 {
		c.Spec.ControlPlaneEndpoint.Address = c.Masters()[0].InternalAddress
	}
	c.Spec.Certificates.Validity.Duration = 2 * time.Hour
	st, err := state.Open(t.TempDir(), "t")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	spec := certs.Spec{ClusterName: "t", Validity: 2 * time.Hour}
	for _, m := range c.EtcdMembers() {
		spec.EtcdMembers = append(spec.EtcdMembers, certs.Member{Name: m.Name, IPs: []string{m.InternalAddress}})
	}
	if _, err := certs.Ensure(st.PKI(), spec, now); err != nil {
		t.Fatal(err)
	}
	cc := &certCluster{t: t, fakes: map[string]*transport.Fake{}, coll: &events.Collect{},
		disabled: map[string][]string{}, stuck: map[string]bool{}, gen: map[string]int{}, failOn: map[string]string{}, leader: 2,
		client: fake.NewClientset(), notReady: map[string]bool{}}
	pki := st.PKI()
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(pki, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	leaf := func(cn string, orgs ...string) []byte {
		dir := t.TempDir()
		for _, f := range []string{"ca.crt", "ca.key"} {
			os.WriteFile(filepath.Join(dir, f), read(f), 0o600)
		}
		if _, err := certs.IssueClient(dir, "ca", "leaf", cn, orgs, 2*time.Hour, now); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "leaf.crt"))
		return b
	}
	kubeconfig := func(user string, embedded bool) []byte {
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: "https://" + c.APIServerEndpoint(), CertificateAuthorityData: read("ca.crt")}
		if embedded {
			cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: leaf(user)}
		} else {
			cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: kubeletClientPEM}
		}
		cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: user}
		cfg.CurrentContext = user
		b, err := clientcmd.Write(*cfg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, h := range c.Spec.Hosts {
		f := transport.NewFake(h.Name)
		cc.fakes[h.Name] = f
		files := map[string][]byte{}
		for _, p := range ExpectedCertFiles(c, &h) {
			switch {
			case p == kubePKI+"/ca.crt":
				files[p] = read("ca.crt")
			case p == kubePKI+"/front-proxy-ca.crt":
				files[p] = read("front-proxy-ca.crt")
			case p == templates.EtcdCAFile || p == templates.KubeadmEtcdCAFile:
				files[p] = read("etcd/ca.crt")
			case p == templates.EtcdServerCert:
				files[p] = read(certs.EtcdServer(h.Name) + ".crt")
			case p == templates.EtcdPeerCert:
				files[p] = read(certs.EtcdPeer(h.Name) + ".crt")
			case p == etcdHealthCert:
				files[p] = read(certs.EtcdHealthcheck + ".crt")
			case p == templates.KubeadmEtcdClientCert:
				files[p] = read(certs.APIServerEtcd + ".crt")
			case p == kubeletConf:
				files[p] = kubeconfig("default-auth", false)
			case strings.HasSuffix(p, ".conf"):
				files[p] = kubeconfig(filepath.Base(p), true)
			case p == kubeletClientPEM:
				files[p] = leaf("system:node:"+h.Name, "system:nodes")
			default:
				files[p] = leaf(filepath.Base(p))
			}
		}
		for p, b := range files {
			f.SetFile(transport.File{Path: p, Content: b})
		}
		f.OnRun = cc.answer(f)
	}
	cc.coll = &events.Collect{}
	cc.run = &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("test", cc.coll),
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return cc.fakes[h.Name], nil },
		Options: engine.Options{Now: time.Now}}
	j, err := state.OpenJournal(st.Journal(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	cc.run.Journal = j
	for _, h := range c.Nodes() {
		cc.client.Tracker().Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.Name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(now.Add(-time.Minute))}}}})
	}
	if _, err := cc.run.Value("kube-client", func() (any, error) { return cc.client, nil }); err != nil {
		t.Fatal(err)
	}
	return cc
}

// kubeletRestarted posts the Node status a restarted kubelet does.
func (cc *certCluster) kubeletRestarted(host string) {
	status := corev1.ConditionTrue
	if cc.notReady[host] {
		status = corev1.ConditionFalse
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: host}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: status, Reason: "KubeletNotReady", LastHeartbeatTime: metav1.NewTime(time.Now().Add(time.Second))}}}}
	if err := cc.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("nodes"), n, ""); err != nil {
		cc.t.Error(err)
	}
}

// splitArgs undoes shellQuote for a list of quoted words.
func splitArgs(s string) []string {
	var out []string
	for _, w := range strings.Split(strings.TrimSpace(s), "' '") {
		out = append(out, strings.Trim(w, "'"))
	}
	return out
}

func (cc *certCluster) answer(f *transport.Fake) func(transport.Cmd) (transport.Result, error) {
	host := f.HostName
	ok := func(s string) (transport.Result, error) { return transport.Result{Stdout: []byte(s)}, nil }
	return func(cmd transport.Cmd) (transport.Result, error) {
		c := cmd.Command
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if p := cc.failOn[host]; p != "" && strings.HasPrefix(c, p) {
			cc.note(host, "FAILED "+p)
			return transport.Result{}, &transport.CmdError{Host: host, Command: c, ExitCode: 1, Stderr: "boom"}
		}
		switch {
		case strings.HasPrefix(c, "sh -s -- "):
			var b strings.Builder
			for _, p := range splitArgs(strings.TrimPrefix(c, "sh -s -- ")) {
				fmt.Fprintf(&b, "==> %s\n", p)
				if file, ok := f.File(p); ok {
					b.Write(file.Content)
				} else {
					b.WriteString("!! missing\n")
				}
			}
			return ok(b.String())
		case strings.Contains(c, "| socat stdio") && strings.Contains(c, "server "+templates.HAProxyBackendName+"/"):
			i := strings.Index(c, "server "+templates.HAProxyBackendName+"/")
			m := strings.Fields(c[i+len("server "+templates.HAProxyBackendName+"/"):])[0]
			m = strings.TrimSuffix(m, "'")
			if strings.Contains(c, "echo 'disable") {
				cc.disabled[host] = append(cc.disabled[host], m)
				cc.maxOut = max(cc.maxOut, len(cc.disabled[host]))
				cc.note(host, "disable "+m)
			} else {
				cc.disabled[host] = slices.DeleteFunc(cc.disabled[host], func(x string) bool { return x == m })
				cc.note(host, "enable "+m)
			}
			return ok("\n")
		case strings.HasPrefix(c, "echo 'show stat'"):
			return ok("UP\n")
		case strings.HasPrefix(c, "kubeadm certs renew"):
			cc.note(host, strings.TrimSuffix(c, " >/dev/null"))
			return ok("")
		case strings.HasPrefix(c, crictl+" stop "):
			var stopped []string
			for _, p := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
				if strings.Contains(c, fmt.Sprintf(" %s-%d", p, cc.gen[host+"/"+p])) {
					stopped = append(stopped, p)
					if !cc.stuck[host+"/"+p] {
						cc.gen[host+"/"+p]++
					}
				}
			}
			cc.note(host, "stop "+strings.Join(stopped, " "))
			return ok("")
		case strings.HasPrefix(c, crictl+" ps -q --name"):
			var ids []string
			for _, p := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
				if strings.Contains(c, p) {
					ids = append(ids, fmt.Sprintf("%s-%d", p, cc.gen[host+"/"+p]))
				}
			}
			return ok(strings.Join(ids, "\n"))
		case strings.HasPrefix(c, "systemctl restart"):
			cc.note(host, c)
			if strings.Contains(c, "kubelet") {
				cc.kubeletRestarted(host)
			}
			return ok("")
		case strings.HasPrefix(c, "ETCDCTL_API=3 etcdctl") && strings.HasSuffix(c, "endpoint status -w json"):
			// master2 (member id 2) leads until moved
			var sts []string
			for i, m := range cc.run.Cluster.EtcdMembers() {
				sts = append(sts, fmt.Sprintf(`{"Endpoint":"https://%s:2379","Status":{"header":{"member_id":%d},"leader":%d}}`, m.InternalAddress, i+1, cc.leader))
			}
			return ok("[" + strings.Join(sts, ",") + "]\n")
		case strings.HasPrefix(c, "ETCDCTL_API=3 etcdctl") && strings.Contains(c, "move-leader"):
			cc.note(host, "etcd "+c[strings.Index(c, "move-leader"):])
			id, _ := strconv.ParseUint(strings.Fields(c[strings.Index(c, "move-leader"):])[1], 16, 64)
			cc.leader = id
			return ok("")
		case strings.HasPrefix(c, "ETCDCTL_API=3 etcdctl"):
			return ok(strings.Repeat("https://x:2379 is healthy: successfully committed proposal\n", len(cc.run.Cluster.EtcdMembers())))
		case strings.HasPrefix(c, "kubectl --kubeconfig"):
			cc.note(host, "readyz")
			return ok("ok")
		case strings.HasPrefix(c, "set -e; d="+kubeletPKI):
			cc.note(host, "kubelet client swapped")
			return ok("")
		}
		return ok("")
	}
}

func TestCheckAllCertsEveryHostAndBastion(t *testing.T) {
	cc := newCertCluster(t, "slb1", "slb2", "master1", "master2", "master3", "worker1")
	// kubelet.crt gone on worker1: reported, not skipped.
	wf := cc.fakes["worker1"]
	wf.OnRun = func(next func(transport.Cmd) (transport.Result, error)) func(transport.Cmd) (transport.Result, error) {
		return func(cmd transport.Cmd) (transport.Result, error) {
			res, err := next(cmd)
			res.Stdout = []byte(strings.Replace(string(res.Stdout), "==> "+kubeletServing+"\n", "==> "+kubeletServing+"\n!! missing\n", 1))
			return res, err
		}
	}(wf.OnRun)
	wf.SetFile(transport.File{Path: kubeletServing, Content: nil})
	rows := CheckAllCerts(context.Background(), cc.run)
	hosts := map[string]int{}
	byKey := map[string]certs.Expiry{}
	for _, r := range rows {
		hosts[r.Host]++
		byKey[r.Host+" "+r.Name] = r
	}
	if hosts["slb1"] != 0 || hosts["master1"] == 0 || hosts["worker1"] == 0 || hosts[BastionHost] == 0 {
		t.Errorf("rows per host: %v", hosts)
	}
	for _, want := range []string{
		"master1 /etc/kubernetes/admin.conf#user/admin.conf", "master1 /etc/kubernetes/super-admin.conf#user/super-admin.conf",
		"master2 /etc/kubernetes/scheduler.conf#user/scheduler.conf", "master2 " + templates.EtcdPeerCert,
		"master3 " + kubeletClientPEM, "worker1 /etc/kubernetes/pki/ca.crt", "bastion pki/etcd/master1/server.crt", "bastion admin.conf",
	} {
		if _, ok := byKey[want]; !ok {
			t.Errorf("no row %q", want)
		}
	}
	if _, ok := byKey["master2 "+superAdminConf+"#user/super-admin.conf"]; ok {
		t.Error("super-admin.conf expected on master2: kubeadm writes it only on the init master")
	}
	if r := byKey["worker1 "+kubeletServing]; r.Err != "missing" {
		t.Errorf("missing kubelet.crt row: %+v", r)
	}
	if r := byKey["bastion admin.conf"]; !strings.Contains(r.Err, "missing") {
		t.Errorf("bastion admin.conf row: %+v", r)
	}
	if r := byKey["master1 "+templates.EtcdServerCert]; r.CA != templates.EtcdCAFile && r.CA != templates.KubeadmEtcdCAFile || r.Err != "" || r.Left <= 0 {
		t.Errorf("etcd server row: %+v", r)
	}
	need, which := certs.NeedsRenewal(rows, 3*time.Hour)
	if !need || len(which) < 20 {
		t.Errorf("2h leaves with a 3h threshold: need=%v %d rows", need, len(which))
	}
	if need, _ := certs.NeedsRenewal(rows, time.Hour); need {
		t.Error("nothing expires within 1h")
	}
}

func TestReadHostCertsNeverShipsKeys(t *testing.T) {
	for _, want := range []string{"BEGIN CERTIFICATE", "client-key-data", "!! missing"} {
		if !strings.Contains(readCertsScript, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	out := "==> /a.crt\n-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n==> /b.conf\n!! missing\n==> /c.pem\n!! unreadable\n"
	got, problems, _ := parseHostCerts(out, []string{"/a.crt", "/b.conf", "/c.pem", "/d.crt"})
	if !strings.Contains(string(got["/a.crt"]), "BEGIN CERTIFICATE") || problems["/b.conf"] != "missing" ||
		!strings.HasPrefix(problems["/c.pem"], "unreadable") || !strings.Contains(problems["/d.crt"], "not read") {
		t.Errorf("parsed %q %v", got, problems)
	}
}

func masterSteps(log []string, host string) []string {
	var out []string
	for _, l := range log {
		if strings.HasPrefix(l, host+": ") {
			out = append(out, strings.TrimPrefix(l, host+": "))
		}
	}
	return out
}

func TestRenewRollsOneMasterAtATime(t *testing.T) {
	cc := newCertCluster(t, "slb1", "slb2", "master1", "master2", "master3", "worker1")
	// the bastion's kubeconfig comes from the first master after the roll
	before := CheckAllCerts(context.Background(), cc.run)
	// x509 keeps whole seconds: renew "a minute later" so new NotAfters are later.
	cc.run.Options.Now = func() time.Time { return time.Now().Add(time.Minute) }
	res, err := renewCerts(context.Background(), cc.run, RenewOptions{IfExpiringWithin: 3 * time.Hour, Poll: time.Millisecond})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, strings.Join(cc.log, "\n"))
	}
	if res.Skipped || !slices.Equal(res.Renewed, []string{"master2", "master3", "master1", "worker1"}) {
		t.Fatalf("result %+v", res)
	}
	if cc.maxOut != 1 {
		t.Errorf("%d masters out of HAProxy at once, want 1", cc.maxOut)
	}
	// Each master: out of HAProxy on both slb, renewed, pods restarted, ready, back in.
	var order []string
	for _, l := range cc.log {
		if strings.HasPrefix(l, "slb1: ") {
			order = append(order, strings.TrimPrefix(l, "slb1: "))
		}
	}
	want := []string{"disable master2", "enable master2", "disable master3", "enable master3", "disable master1", "enable master1"}
	if !slices.Equal(order, want) {
		t.Errorf("slb1 saw %v, want %v", order, want)
	}
	for _, m := range []string{"master1", "master2", "master3"} {
		steps := strings.Join(masterSteps(cc.log, m), " | ")
		for _, w := range []string{"kubeadm certs renew all", "systemctl restart etcd", "stop kube-apiserver kube-controller-manager kube-scheduler", "kubelet client swapped", "systemctl restart kubelet", "readyz"} {
			if !strings.Contains(steps, w) {
				t.Errorf("%s: no %q in %s", m, w, steps)
			}
		}
		// between disable and enable on slb1, all of this master's work happened
		di := slices.Index(cc.log, "slb1: disable "+m)
		ei := slices.Index(cc.log, "slb1: enable "+m)
		ki := slices.Index(cc.log, m+": kubeadm certs renew all")
		if !(di < ki && ki < ei) {
			t.Errorf("%s renewed outside its HAProxy window (disable %d, kubeadm %d, enable %d)", m, di, ki, ei)
		}
	}
	// master2 led etcd: leadership moved away before its etcd restarted, and only then
	if s := strings.Join(masterSteps(cc.log, "master1"), " | "); !strings.Contains(s, "etcd move-leader 1") {
		t.Errorf("no move-leader away from master2 (etcdctl runs on master1): %s", s)
	}
	if n := strings.Count(strings.Join(cc.log, "\n"), "move-leader"); n != 2 {
		t.Errorf("%d move-leader, want 2 (master2 leads, then master1 after it got the lead)", n)
	}
	if s := strings.Join(masterSteps(cc.log, "worker1"), " | "); strings.Contains(s, "kubeadm") || !strings.Contains(s, "systemctl restart kubelet") {
		t.Errorf("worker1: %s", s)
	}
	// every etcd certificate and kubelet client certificate on every host changed
	after := CheckAllCerts(context.Background(), cc.run)
	na := map[string]time.Time{}
	for _, r := range before {
		na[r.Host+" "+r.Name] = r.NotAfter
	}
	changed := 0
	for _, r := range after {
		if strings.Contains(r.Name, "/etc/etcd/pki/server.crt") || strings.Contains(r.Name, "/etc/etcd/pki/peer.crt") || strings.Contains(r.Name, "kubelet-client") || strings.Contains(r.Name, "apiserver-etcd-client") {
			if !r.NotAfter.After(na[r.Host+" "+r.Name]) && na[r.Host+" "+r.Name] != (time.Time{}) {
				// Put of the kubelet pem is emulated by the swap command; the cert file is k4t-renewed-client.crt
				if !strings.Contains(r.Name, "kubelet-client") {
					t.Errorf("%s %s: NotAfter %s not after %s", r.Host, r.Name, r.NotAfter, na[r.Host+" "+r.Name])
				}
			} else {
				changed++
			}
		}
	}
	if changed == 0 {
		t.Error("no etcd certificate renewed on any host")
	}
	if f, ok := cc.fakes["master2"].File(kubeletPKI + "/k4t-renewed-client.crt"); !ok || len(f.Content) == 0 {
		t.Error("no renewed kubelet client certificate uploaded to master2")
	}
	if _, err := os.Stat(cc.run.State.Kubeconfig()); err != nil {
		t.Errorf("bastion kubeconfig not refreshed: %v", err)
	}
}

func TestRenewStopsAtFirstFailure(t *testing.T) {
	cc := newCertCluster(t, "slb1", "slb2", "master1", "master2", "master3")
	cc.failOn["master3"] = "kubeadm certs renew"
	res, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"all"}, Poll: time.Millisecond})
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "master3 / certs") {
		t.Errorf("error does not name host and phase: %v", err)
	}
	if !slices.Equal(res.Renewed, []string{"master2"}) {
		t.Errorf("renewed %v, want [master2]", res.Renewed)
	}
	// (etcdctl runs from master1 against the whole cluster; that changes nothing on master1)
	if s := slices.DeleteFunc(masterSteps(cc.log, "master1"), func(x string) bool { return strings.HasPrefix(x, "etcd move-leader") }); len(s) != 0 {
		t.Errorf("master1 was touched after the failure: %v", s)
	}
	for _, slb := range []string{"slb1", "slb2"} {
		if len(cc.disabled[slb]) != 0 {
			t.Errorf("%s: %v left out of HAProxy", slb, cc.disabled[slb])
		}
	}
}

// A worker whose restarted kubelet keeps its Node NotReady stops the roll
// there: the next worker's kubelet is not restarted while one node is out.
func TestRenewWaitsForEachNodeReady(t *testing.T) {
	cc := newCertCluster(t, "master1", "worker1", "worker2")
	cc.notReady["worker1"] = true
	res, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"kubelet-client"}, Poll: time.Millisecond, ReadyTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "worker1 / certs") || !strings.Contains(err.Error(), "node worker1 Ready after kubelet's restart (last: Ready=False (KubeletNotReady)") {
		t.Fatalf("error: %v", err)
	}
	if s := masterSteps(cc.log, "worker2"); len(s) != 0 {
		t.Errorf("worker2 touched while worker1 was NotReady: %v", s)
	}
	if slices.Contains(res.Renewed, "worker2") {
		t.Errorf("renewed %v", res.Renewed)
	}
	cc.notReady["worker1"] = false
	if _, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"kubelet-client"}, Poll: time.Millisecond}); err != nil {
		t.Fatalf("once worker1 is Ready: %v", err)
	}
	if s := masterSteps(cc.log, "worker2"); !slices.Contains(s, "systemctl restart kubelet") {
		t.Errorf("worker2: %v", s)
	}
}

// Without the API (say admin.conf had expired) the roll does not wait for
// Nodes it cannot see: it goes on and warns.
func TestRenewWithoutTheAPIWarns(t *testing.T) {
	cc := newCertCluster(t, "master1", "worker1")
	cc.client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("x509: certificate has expired")
	})
	if _, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"kubelet-client"}, Poll: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, ev := range cc.coll.Of(events.Message) {
		warned = warned || strings.Contains(ev.Message, "not waiting for node worker1 to be Ready after kubelet's restart: the API did not answer")
	}
	if !warned {
		t.Errorf("no warning: %+v", cc.coll.Of(events.Message))
	}
}

func TestRenewSkipsWhenNothingExpires(t *testing.T) {
	cc := newCertCluster(t, "master1", "worker1")
	res, err := renewCerts(context.Background(), cc.run, RenewOptions{IfExpiringWithin: time.Hour, Poll: time.Millisecond})
	if err != nil || !res.Skipped {
		t.Fatalf("res %+v err %v", res, err)
	}
	if len(cc.log) != 0 {
		t.Errorf("hosts touched: %v", cc.log)
	}
}

func TestRenewLightweightWithoutHAProxy(t *testing.T) {
	cc := newCertCluster(t, "master1", "worker1")
	res, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"apiserver", "etcd-server"}, Poll: time.Millisecond})
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(cc.log, "\n"))
	}
	if !slices.Equal(res.Renewed, []string{"master1"}) {
		t.Errorf("renewed %v (workers have no named certificate)", res.Renewed)
	}
	steps := strings.Join(masterSteps(cc.log, "master1"), " | ")
	for _, w := range []string{"kubeadm certs renew apiserver", "systemctl restart etcd", "stop kube-apiserver"} {
		if !strings.Contains(steps, w) {
			t.Errorf("no %q in %s", w, steps)
		}
	}
	for _, not := range []string{"kube-scheduler", "kubelet", "disable"} {
		if strings.Contains(steps, not) {
			t.Errorf("%q restarted although none of its certificates was renewed: %s", not, steps)
		}
	}
}

func TestParseCertNames(t *testing.T) {
	if n, err := ParseCertNames(nil); err != nil || len(n) != len(AllCertNames()) {
		t.Errorf("%v %v", n, err)
	}
	if _, err := ParseCertNames([]string{"apiserver", "nope"}); err == nil || !strings.Contains(err.Error(), "known: all") {
		t.Errorf("err %v", err)
	}
}

func TestRenewCAsKeepsKeysAndPushes(t *testing.T) {
	cc := newCertCluster(t, "master1", "worker1")
	old, _ := os.ReadFile(filepath.Join(cc.run.State.PKI(), "ca.crt"))
	if err := RenewCAs(context.Background(), cc.run, nil, 20*365*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	now, _ := os.ReadFile(filepath.Join(cc.run.State.PKI(), "ca.crt"))
	if string(old) == string(now) {
		t.Fatal("ca.crt unchanged")
	}
	for host, paths := range map[string][]string{
		"master1": {kubePKI + "/ca.crt", kubePKI + "/front-proxy-ca.crt", templates.KubeadmEtcdCAFile, templates.EtcdCAFile},
		"worker1": {kubePKI + "/ca.crt"},
	} {
		for _, p := range paths {
			f, _ := cc.fakes[host].File(p)
			local := map[string]string{kubePKI + "/ca.crt": "ca.crt", kubePKI + "/front-proxy-ca.crt": "front-proxy-ca.crt"}[p]
			if local == "" {
				local = "etcd/ca.crt"
			}
			want, _ := os.ReadFile(filepath.Join(cc.run.State.PKI(), local))
			if string(f.Content) != string(want) {
				t.Errorf("%s %s not the renewed CA", host, p)
			}
		}
		kc, _ := cc.fakes[host].File(kubeletConf)
		cfg, err := clientcmd.Load(kc.Content)
		if err != nil || string(cfg.Clusters["kubernetes"].CertificateAuthorityData) != string(now) {
			t.Errorf("%s kubelet.conf CA not updated (%v)", host, err)
		}
	}
	// leaves signed before still verify: check reports no error anywhere
	for _, r := range CheckAllCerts(context.Background(), cc.run) {
		if r.Err != "" && r.Name != "admin.conf" {
			t.Errorf("%s %s: %s", r.Host, r.Name, r.Err)
		}
	}
}

func TestNodeFallbackOnEveryMaster(t *testing.T) {
	cc := newCertCluster(t, "slb1", "master1", "master2", "master3", "worker1")
	if err := InstallNodeFallback(context.Background(), cc.run, 14*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	hours := map[string]bool{}
	for _, m := range []string{"master1", "master2", "master3"} {
		f := cc.fakes[m]
		tmr, ok := f.File(templates.SystemdUnitDir + "/" + templates.CertsFallbackUnit + ".timer")
		if !ok {
			t.Fatalf("%s: no timer", m)
		}
		for _, l := range strings.Split(string(tmr.Content), "\n") {
			if strings.HasPrefix(l, "OnCalendar=") {
				hours[strings.Fields(l)[1][:2]] = true
			}
		}
		if s, ok := f.File(templates.CertsFallbackScriptPath); !ok || s.Mode.Perm() != 0o755 {
			t.Errorf("%s: script %v", m, s.Mode)
		}
		if cmds := strings.Join(f.Commands(), "\n"); !strings.Contains(cmds, "systemctl daemon-reload && systemctl restart k4t-certs-fallback.timer && systemctl enable --now k4t-certs-fallback.timer") {
			t.Errorf("%s ran:\n%s", m, cmds)
		}
	}
	if len(hours) != 3 {
		t.Errorf("masters share an hour: %v", hours)
	}
	for _, h := range []string{"slb1", "worker1"} {
		if _, ok := cc.fakes[h].File(templates.CertsFallbackScriptPath); ok {
			t.Errorf("%s got the fallback", h)
		}
	}
	if err := RemoveNodeFallback(context.Background(), cc.run); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(cc.fakes["master2"].Commands(), "\n"), "systemctl disable --now k4t-certs-fallback.timer") {
		t.Error("not removed")
	}
	st := cc.run.State
	if NodeFallbackRecorded(st) {
		t.Error("recorded before RecordNodeFallback")
	}
	RecordNodeFallback(st, 14*24*time.Hour)
	if !NodeFallbackRecorded(st) {
		t.Error("not recorded")
	}
}

func TestRenewFailureNamesCertsPhase(t *testing.T) {
	cc := newCertCluster(t, "master1")
	cc.failOn["master1"] = "kubectl --kubeconfig"
	_, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"scheduler.conf"}, Poll: time.Millisecond, ReadyTimeout: 10 * time.Millisecond})
	if err == nil || !strings.HasPrefix(err.Error(), "master1 / certs: ") || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("err %v", err)
	}
	// the scheduler was restarted before the roll failed
	if !strings.Contains(strings.Join(cc.log, "\n"), "master1: stop kube-scheduler") {
		t.Errorf("log %v", cc.log)
	}
}

// A static pod whose new container never comes is named, with where to look.
func TestStaticPodNotRestartedIsNamed(t *testing.T) {
	cc := newCertCluster(t, "master1")
	cc.stuck["master1/kube-scheduler"] = true
	_, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"scheduler.conf"}, Poll: time.Millisecond, PodRestartTimeout: 20 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "new containers of kube-scheduler") || !strings.Contains(err.Error(), "crictl ps -a") {
		t.Fatalf("err %v", err)
	}
}

// A renew killed while master2 was out of HAProxy left a journaled intent:
// the next renew puts master2 back first, even when nothing expires any more.
func TestRenewFinishesWhatAKilledRunStarted(t *testing.T) {
	cc := newCertCluster(t, "slb1", "slb2", "master1", "master2", "master3")
	if err := cc.run.Journal.Record("master2", certsPhase, state.Intent, lbOutKey("master2"), "out of HAProxy"); err != nil {
		t.Fatal(err)
	}
	cc.disabled["slb1"], cc.disabled["slb2"] = []string{"master2"}, []string{"master2"}
	res, err := renewCerts(context.Background(), cc.run, RenewOptions{IfExpiringWithin: time.Hour, Poll: time.Millisecond})
	if err != nil || !res.Skipped {
		t.Fatalf("res %+v err %v", res, err)
	}
	for _, slb := range []string{"slb1", "slb2"} {
		if len(cc.disabled[slb]) != 0 {
			t.Errorf("%s: %v still out of HAProxy", slb, cc.disabled[slb])
		}
	}
	if p, _ := state.PendingIntents(cc.run.State.Journal()); len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
	// And a second run has nothing left to finish.
	cc.log = nil
	if _, err := renewCerts(context.Background(), cc.run, RenewOptions{IfExpiringWithin: time.Hour, Poll: time.Millisecond}); err != nil || len(cc.log) != 0 {
		t.Errorf("second run: %v, touched %v", err, cc.log)
	}
}

// renewCerts runs `k4t certs renew`'s phases in pkg/action's order (that
// package imports this one, so its list cannot be used here).
func renewCerts(ctx context.Context, r *engine.Run, o RenewOptions) (*RenewResult, error) {
	rn, err := NewCertsRenewal(o)
	if err != nil {
		return nil, err
	}
	_, err = (&engine.Engine{Run: r, Phases: []engine.Phase{
		&CertsResume{}, &CertsExpiring{Renewal: rn}, &CertsLocal{Renewal: rn},
		&CertsRoll{Renewal: rn}, &CertsRollWorkers{Renewal: rn}, &CertsKubeconfig{Renewal: rn},
	}}).Execute(ctx)
	return &rn.Result, err
}

// A dry run lists every host's steps in roll order and touches nothing: no
// host command, no certificate in the state dir.
func TestRenewDryRunPlansTheRoll(t *testing.T) {
	cc := newCertCluster(t, "slb1", "slb2", "master1", "master2", "master3", "worker1")
	pki := cc.run.State.PKI()
	before, _ := os.ReadFile(filepath.Join(pki, certs.EtcdServer("master1")+".crt"))
	cc.run.DryRun = true
	if _, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"all"}, Poll: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if len(cc.log) != 0 {
		t.Errorf("a dry run touched hosts: %v", cc.log)
	}
	if after, _ := os.ReadFile(filepath.Join(pki, certs.EtcdServer("master1")+".crt")); !bytes.Equal(before, after) {
		t.Error("a dry run renewed etcd-server in the state dir")
	}
	var planned []string
	for _, ev := range cc.coll.Events {
		if ev.Type == events.Change && ev.Action == "planned" {
			planned = append(planned, ev.Host+": "+ev.Message)
		}
	}
	all := strings.Join(planned, "\n")
	for _, w := range []string{
		"master2: take master2 out of HAProxy on every slb",
		"master2: kubeadm certs renew apiserver apiserver-kubelet-client front-proxy-client admin.conf controller-manager.conf scheduler.conf",
		"master2: restart etcd",
		"master2: restart the static pods kube-apiserver, kube-controller-manager, kube-scheduler",
		"master1: kubeadm certs renew apiserver apiserver-kubelet-client front-proxy-client admin.conf super-admin.conf",
		"worker1: renew kubelet's kubelet-client, kubelet-serving certificate(s) and restart kubelet",
		": renew 8 etcd certificate(s) in ",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("no %q in the plan:\n%s", w, all)
		}
	}
	// masters in roll order (the first last), each out and back in before the next
	var order []string
	for _, p := range planned {
		if strings.Contains(p, "HAProxy") {
			order = append(order, p[:strings.Index(p, ":")])
		}
	}
	if want := []string{"master2", "master2", "master3", "master3", "master1", "master1"}; !slices.Equal(order, want) {
		t.Errorf("HAProxy steps by host %v, want %v", order, want)
	}
}

// A master whose kube-apiserver does not answer after a failed step stays
// out of HAProxy, and the error says so; the next renew puts it back first.
func TestRenewLeavesAnUnreadyMasterOut(t *testing.T) {
	cc := newCertCluster(t, "slb1", "slb2", "master1", "master2", "master3")
	cc.failOn["master2"] = "kubectl --kubeconfig"
	_, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"scheduler.conf"}, Poll: time.Millisecond, ReadyTimeout: 10 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "renew stopped at master2, which is left out of HAProxy") {
		t.Fatalf("err %v", err)
	}
	for _, slb := range []string{"slb1", "slb2"} {
		if !slices.Equal(cc.disabled[slb], []string{"master2"}) {
			t.Errorf("%s: out of HAProxy %v, want [master2]", slb, cc.disabled[slb])
		}
	}
	delete(cc.failOn, "master2")
	cc.log = nil
	if _, err := renewCerts(context.Background(), cc.run, RenewOptions{Names: []string{"scheduler.conf"}, Poll: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if cc.log[0] != "slb1: enable master2" {
		t.Errorf("the next renew began with %q, want master2 back into HAProxy", cc.log[0])
	}
	for _, slb := range []string{"slb1", "slb2"} {
		if len(cc.disabled[slb]) != 0 {
			t.Errorf("%s: %v still out of HAProxy", slb, cc.disabled[slb])
		}
	}
}
