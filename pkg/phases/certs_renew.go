package phases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Certificate names `k4t certs renew NAME…` accepts. kubeadm's own names are renewed with
// `kubeadm certs renew` on each master; k4t's etcd certificates with pkg/certs in the state
// dir (keeping their keys) and pushed; kubelet's certificates on every node.
var (
	KubeadmCertNames = []string{"apiserver", "apiserver-kubelet-client", "front-proxy-client",
		"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"}
	EtcdCertNames    = []string{"etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"}
	KubeletCertNames = []string{"kubelet-client", "kubelet-serving"}
)

// AllCertNames lists every name RenewCerts accepts besides "all".
func AllCertNames() []string {
	return slices.Concat(KubeadmCertNames, EtcdCertNames, KubeletCertNames)
}

// podsUsing maps a certificate name to the static pod that must restart to use it.
var podsUsing = map[string]string{
	"apiserver":                "kube-apiserver",
	"apiserver-kubelet-client": "kube-apiserver",
	"front-proxy-client":       "kube-apiserver",
	"apiserver-etcd-client":    "kube-apiserver",
	"controller-manager.conf":  "kube-controller-manager",
	"scheduler.conf":           "kube-scheduler",
}

// RenewOptions tune RenewCerts.
type RenewOptions struct {
	// Names to renew; empty or containing "all" means every name (AllCertNames).
	Names []string
	// IfExpiringWithin > 0 first checks every host and renews only when some leaf
	// certificate expires within it; then it renews everything Names says.
	IfExpiringWithin time.Duration
	// Validity of k4t's etcd certificates; 0 means the inventory's
	// spec.certificates.validity. (kubelet client certificates keep their length.)
	Validity time.Duration
	// Timeouts of the health gates; zero means the defaults.
	ReadyTimeout, PodGoneTimeout time.Duration
	// Poll is the interval of every wait; zero means 1s.
	Poll time.Duration
}

// RenewResult says what RenewCerts did.
type RenewResult struct {
	// Skipped: IfExpiringWithin was set and nothing expires within it.
	Skipped bool
	// Expiring lists "host: certificate" rows that triggered the renewal.
	Expiring []string
	// Renewed lists the hosts rolled, in order.
	Renewed []string
}

// ParseCertNames checks names against AllCertNames; empty or "all" gives every name.
func ParseCertNames(names []string) ([]string, error) {
	if len(names) == 0 || slices.Contains(names, "all") {
		return AllCertNames(), nil
	}
	all := AllCertNames()
	var out []string
	for _, n := range names {
		if !slices.Contains(all, n) {
			return nil, fmt.Errorf("unknown certificate %q (known: all, %s)", n, strings.Join(all, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

type renewer struct {
	r       *engine.Run
	o       RenewOptions
	names   []string
	has     func(...string) bool
	poll    time.Duration
	readyTO time.Duration
	goneTO  time.Duration
}

// RenewCerts renews certificates one master at a time (see docs/certs.md): for each etcd
// member and master in turn it takes the master out of HAProxy on every slb host, renews
// kubeadm's certificates with kubeadm, pushes k4t's renewed etcd certificates, restarts
// exactly the static pods and units whose certificates changed, renews kubelet's
// certificates, waits for that master's /readyz and for etcd health, and puts it back.
// Workers' kubelet certificates follow, one node at a time. Finally the bastion's admin
// kubeconfig is refreshed. The first failure stops the roll: hosts not reached yet are
// untouched.
func RenewCerts(ctx context.Context, r *engine.Run, o RenewOptions) (*RenewResult, error) {
	names, err := ParseCertNames(o.Names)
	if err != nil {
		return nil, err
	}
	rn := &renewer{r: r, o: o, names: names, poll: o.Poll, readyTO: o.ReadyTimeout, goneTO: o.PodGoneTimeout}
	rn.has = func(ns ...string) bool {
		return slices.ContainsFunc(ns, func(n string) bool { return slices.Contains(names, n) })
	}
	if rn.poll <= 0 {
		rn.poll = time.Second
	}
	if rn.readyTO <= 0 {
		rn.readyTO = 3 * time.Minute
	}
	if rn.goneTO <= 0 {
		rn.goneTO = 2 * time.Minute
	}
	if rn.o.Validity <= 0 {
		rn.o.Validity = r.Cluster.Spec.Certificates.Validity.Duration
	}
	res := &RenewResult{}
	// What a killed renew started is finished first, even when nothing
	// expires any more: masters back into HAProxy, paused static pods back,
	// pending restarts done.
	if err := FinishInterrupted(ctx, r, certsPhase); err != nil {
		return res, err
	}
	if err := rn.restorePaused(ctx); err != nil {
		return res, err
	}
	if o.IfExpiringWithin > 0 {
		rows := CheckAllCerts(ctx, r)
		need, which := certs.NeedsRenewal(rows, o.IfExpiringWithin)
		for _, row := range rows {
			if row.Err != "" {
				r.Events.Warnf(certsPhase, row.Host, "%s: %s", row.Name, row.Err)
			}
		}
		if !need {
			res.Skipped = true
			r.Events.Infof(certsPhase, "", "no certificate expires within %s: nothing to renew", o.IfExpiringWithin)
			return res, nil
		}
		res.Expiring = which
		r.Events.Infof(certsPhase, "", "%d certificate(s) expire within %s (first: %s): renewing", len(which), o.IfExpiringWithin, which[0])
	}
	if err := rn.renewLocal(); err != nil {
		return res, err
	}
	for _, h := range rn.rollOrder() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := rn.host(ctx, h); err != nil {
			// Health gates borrowed from other phases name their phase; this is "certs".
			var pe *engine.Error
			if errors.As(err, &pe) {
				pe.Phase = certsPhase
				if pe.Host == "" {
					pe.Host = h.Name
				}
			}
			return res, engine.WrapPhase(certsPhase, h.Name, err)
		}
		res.Renewed = append(res.Renewed, h.Name)
	}
	if rn.has(KubeadmCertNames...) || rn.has(EtcdCertNames...) {
		if err := (&Kubeconfig{}).Check(ctx, r); err != nil {
			return res, engine.WrapPhase(certsPhase, r.Cluster.FirstMaster().Name, fmt.Errorf("refreshing the bastion's kubeconfig: %w", err))
		}
	}
	return res, nil
}

// restorePaused moves back the static pod manifests that a run killed while
// pods were paused left aside, on every master; a change only where there are.
func (rn *renewer) restorePaused(ctx context.Context) error {
	return engine.OnHosts(ctx, rn.r, certsPhase, rn.r.Cluster.Masters(), func(ctx context.Context, hc *engine.HostCtx) error {
		res, err := hc.Conn.Run(ctx, transport.Cmd{Command: fmt.Sprintf("ls %s/*.yaml 2>/dev/null; true", pausedDir), ReadOnly: true})
		if err != nil || strings.TrimSpace(string(res.Stdout)) == "" {
			return err
		}
		return rn.cmd(ctx, hc, "restore static pod manifests an interrupted run paused",
			fmt.Sprintf("for f in %[1]s/*.yaml; do [ -e \"$f\" ] && mv -n \"$f\" %[2]s/; done; true", pausedDir, manifestsDir), time.Minute)
	})
}

// rollOrder: external etcd members, then masters (the first master last, so the one that
// holds super-admin.conf and answers k4t's kubectl is changed when the others are back),
// then workers.
func (rn *renewer) rollOrder() []*v1alpha1.Host {
	c := rn.r.Cluster
	var out []*v1alpha1.Host
	for _, m := range c.EtcdMembers() {
		if !m.HasRole(v1alpha1.RoleMaster) {
			out = append(out, m)
		}
	}
	masters := c.Masters()
	if len(masters) > 1 {
		masters = append(slices.Clone(masters[1:]), masters[0])
	}
	out = append(out, masters...)
	if rn.has(KubeletCertNames...) {
		for _, w := range c.Workers() {
			if !w.HasRole(v1alpha1.RoleMaster) {
				out = append(out, w)
			}
		}
	}
	return out
}

// renewLocal renews k4t's etcd certificates in the state dir, keeping their keys.
func (rn *renewer) renewLocal() error {
	var rels []string
	for _, m := range rn.r.Cluster.EtcdMembers() {
		if rn.has("etcd-server") {
			rels = append(rels, certs.EtcdServer(m.Name)+".crt")
		}
		if rn.has("etcd-peer") {
			rels = append(rels, certs.EtcdPeer(m.Name)+".crt")
		}
	}
	if rn.has("etcd-healthcheck-client") {
		rels = append(rels, certs.EtcdHealthcheck+".crt")
	}
	if rn.has("apiserver-etcd-client") {
		rels = append(rels, certs.APIServerEtcd+".crt")
	}
	for _, rel := range rels {
		if err := certs.RenewLeaf(rn.r.State.PKI(), rel, rn.o.Validity, rn.r.Now()); err != nil {
			return engine.Errorf("", certsPhase, "run `k4t apply --only pki` to re-issue what is missing, then renew again",
				"renewing %s in %s: %v", rel, rn.r.State.PKI(), err)
		}
	}
	if len(rels) > 0 {
		rn.r.Events.Infof(certsPhase, "", "renewed %d etcd certificate(s) in %s (keys kept)", len(rels), rn.r.State.PKI())
	}
	return nil
}

func isMember(c *v1alpha1.Cluster, h *v1alpha1.Host) bool {
	return slices.ContainsFunc(c.EtcdMembers(), func(m *v1alpha1.Host) bool { return m.Name == h.Name })
}

// host renews everything on one host; masters are out of HAProxy meanwhile.
func (rn *renewer) host(ctx context.Context, h *v1alpha1.Host) (err error) {
	r := rn.r
	conn, err := r.Connect(ctx, h)
	if err != nil {
		return err
	}
	hc := &engine.HostCtx{Host: h, Conn: conn, Run: r}
	master := h.HasRole(v1alpha1.RoleMaster)
	start := time.Now()
	r.Events.Infof(certsPhase, h.Name, "renewing certificates")
	if master {
		if len(r.Cluster.SLBs()) > 0 {
			if err := HAProxyOut(ctx, r, certsPhase, h); err != nil {
				return err
			}
			// Put it back whatever happens: HAProxy's health check keeps traffic away
			// from a kube-apiserver that is not ready. A kill before this leaves
			// the journaled intent, which the next renew finishes first.
			defer func() {
				if e := HAProxyIn(context.WithoutCancel(ctx), r, certsPhase, h.Name); e != nil && err == nil {
					err = e
				}
				if err == nil {
					err = WaitHAProxyUp(ctx, r, certsPhase, h.Name, time.Minute)
				}
			}()
		}
	}
	pods := map[string]bool{}
	if master {
		kn, err := rn.kubeadm(ctx, hc)
		if err != nil {
			return err
		}
		for _, n := range kn {
			if p := podsUsing[n]; p != "" {
				pods[p] = true
			}
		}
	}
	etcdChanged, clientChanged, err := rn.pushEtcd(ctx, hc, master)
	if err != nil {
		return err
	}
	if clientChanged {
		pods["kube-apiserver"] = true
	}
	if etcdChanged {
		if err := rn.moveEtcdLeader(ctx, h); err != nil {
			return err
		}
		c := engine.RestartChange(hc, "etcd")
		c.Phase = certsPhase
		if err := engine.ApplyChange(ctx, r, conn, c); err != nil {
			return err
		}
		if err := WaitEtcdHealthy(ctx, r, etcdHealthTimeout); err != nil {
			return err
		}
	}
	if len(pods) > 0 {
		if err := rn.restartPods(ctx, hc, sortedKeys(pods)); err != nil {
			return err
		}
	}
	if h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker) {
		if err := rn.kubelet(ctx, hc); err != nil {
			return err
		}
	}
	if master {
		if err := WaitAPIServerReady(ctx, hc, "https://"+h.InternalAddress+":6443", rn.readyTO); err != nil {
			return err
		}
	}
	if isMember(r.Cluster, h) {
		if err := WaitEtcdHealthy(ctx, r, etcdHealthTimeout); err != nil {
			return err
		}
	}
	r.Events.Infof(certsPhase, h.Name, "certificates renewed in %s", time.Since(start).Round(time.Second))
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// cmd runs one command on the host as a change (an event, an error naming host and phase).
func (rn *renewer) cmd(ctx context.Context, hc *engine.HostCtx, desc, command string, timeout time.Duration) error {
	c := engine.CommandChange(hc, certsPhase, desc, command)
	c.Apply = func(ctx context.Context, h transport.Host) error {
		_, err := h.Run(ctx, transport.Cmd{Command: command, Timeout: timeout})
		return err
	}
	return engine.ApplyChange(ctx, rn.r, hc.Conn, c)
}

// kubeadm renews kubeadm's certificates on a master and returns the names renewed.
func (rn *renewer) kubeadm(ctx context.Context, hc *engine.HostCtx) ([]string, error) {
	var names []string
	first := hc.Name() == rn.r.Cluster.FirstMaster().Name
	for _, n := range KubeadmCertNames {
		if rn.has(n) && (n != "super-admin.conf" || first) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	var cmd string
	if len(names) == len(KubeadmCertNames) || (!first && len(names) == len(KubeadmCertNames)-1) {
		cmd = "kubeadm certs renew all"
	} else {
		var parts []string
		for _, n := range names {
			parts = append(parts, "kubeadm certs renew "+n)
		}
		cmd = strings.Join(parts, " && ")
	}
	err := rn.cmd(ctx, hc, "kubeadm certs renew "+strings.Join(names, " "), cmd+" >/dev/null", 2*time.Minute)
	if err != nil {
		return nil, engine.Errorf(hc.Name(), certsPhase, "run `kubeadm certs check-expiration` on "+hc.Name()+"; kubeadm reads its ClusterConfiguration through the API, so the API must answer",
			"%v", err)
	}
	return names, nil
}

// pushEtcd writes the renewed etcd certificates of this host from the state dir.
func (rn *renewer) pushEtcd(ctx context.Context, hc *engine.HostCtx, master bool) (etcdChanged, clientChanged bool, err error) {
	type f struct {
		name, rel, remote string
		etcd              bool
	}
	var files []f
	if isMember(rn.r.Cluster, hc.Host) {
		files = append(files,
			f{"etcd-server", certs.EtcdServer(hc.Name()) + ".crt", templates.EtcdServerCert, true},
			f{"etcd-peer", certs.EtcdPeer(hc.Name()) + ".crt", templates.EtcdPeerCert, true},
			f{"etcd-healthcheck-client", certs.EtcdHealthcheck + ".crt", etcdHealthCert, false})
	}
	if master {
		files = append(files, f{"apiserver-etcd-client", certs.APIServerEtcd + ".crt", templates.KubeadmEtcdClientCert, false})
	}
	for _, x := range files {
		if !rn.has(x.name) {
			continue
		}
		file, o, err := pkiFile(rn.r, x.rel, x.remote)
		if err != nil {
			return false, false, err
		}
		c, err := engine.FileChange(ctx, hc, certsPhase, file, o)
		if err != nil {
			return false, false, err
		}
		if c == nil {
			continue
		}
		if err := engine.ApplyChange(ctx, rn.r, hc.Conn, c); err != nil {
			return false, false, err
		}
		if x.etcd {
			etcdChanged = true
		}
		if x.name == "apiserver-etcd-client" {
			clientChanged = true
		}
	}
	return etcdChanged, clientChanged, nil
}

const (
	pausedDir = "/etc/kubernetes/k4t/paused-manifests"
	crictl    = "crictl --runtime-endpoint unix://" + templates.ContainerdSocket
)

// restartPods restarts static pods the way kubeadm's documentation says: move their
// manifests aside, wait until kubelet has stopped their containers, move them back, wait
// until new containers run. The manifests go back even if the wait fails or k4t is
// interrupted (and the next renew puts back any a killed run left aside).
func (rn *renewer) restartPods(ctx context.Context, hc *engine.HostCtx, pods []string) (err error) {
	var out, back, names []string
	for _, p := range pods {
		out = append(out, fmt.Sprintf("mv %s/%s.yaml %s/", manifestsDir, p, pausedDir))
		back = append(back, fmt.Sprintf("mv -n %s/%s.yaml %s/", pausedDir, p, manifestsDir))
		names = append(names, p)
	}
	filter := "^(" + strings.Join(names, "|") + ")$"
	before, err := hc.Conn.Run(ctx, transport.Cmd{Command: crictl + " ps -q --name '" + filter + "'", Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return err
	}
	old := strings.Fields(string(before.Stdout))
	if err := rn.cmd(ctx, hc, "pause static pods "+strings.Join(pods, ", "), "mkdir -p "+pausedDir+" && "+strings.Join(out, " && "), 30*time.Second); err != nil {
		return err
	}
	restored := false
	defer func() {
		if restored {
			return
		}
		if e := rn.cmd(context.WithoutCancel(ctx), hc, "restore static pods "+strings.Join(pods, ", "), strings.Join(back, "; "), 30*time.Second); e != nil && err == nil {
			err = e
		}
	}()
	if err := rn.wait(ctx, hc, rn.goneTO, "containers of "+strings.Join(pods, ", ")+" to stop", func() (bool, string, error) {
		res, err := hc.Conn.Run(ctx, transport.Cmd{Command: crictl + " ps -q --name '" + filter + "'", Timeout: 30 * time.Second, ReadOnly: true})
		if err != nil {
			return false, "", err
		}
		running := strings.Fields(string(res.Stdout))
		still := slices.DeleteFunc(running, func(id string) bool { return !slices.Contains(old, id) })
		return len(still) == 0, fmt.Sprintf("%d still running", len(still)), nil
	}); err != nil {
		return err
	}
	restored = true
	if err := rn.cmd(ctx, hc, "restore static pods "+strings.Join(pods, ", "), strings.Join(back, " && "), 30*time.Second); err != nil {
		return err
	}
	return rn.wait(ctx, hc, rn.readyTO, "new containers of "+strings.Join(pods, ", "), func() (bool, string, error) {
		var missing []string
		for _, p := range pods {
			res, err := hc.Conn.Run(ctx, transport.Cmd{Command: crictl + " ps -q --name '^" + p + "$'", Timeout: 30 * time.Second, ReadOnly: true})
			if err != nil {
				return false, "", err
			}
			ids := strings.Fields(string(res.Stdout))
			if !slices.ContainsFunc(ids, func(id string) bool { return !slices.Contains(old, id) }) {
				missing = append(missing, p)
			}
		}
		return len(missing) == 0, "not running yet: " + strings.Join(missing, ", "), nil
	})
}

// wait polls cond until it holds, the timeout passes or ctx ends.
func (rn *renewer) wait(ctx context.Context, hc *engine.HostCtx, timeout time.Duration, what string, cond func() (bool, string, error)) error {
	var last string
	err := engine.Poll(ctx, timeout, rn.poll, func(context.Context) (bool, error) {
		ok, status, err := cond()
		switch {
		case err != nil:
			last = err.Error()
		case !ok:
			last = status
		}
		return err == nil && ok, nil
	})
	if errors.Is(err, engine.ErrTimeout) {
		return engine.Errorf(hc.Name(), certsPhase, "check 'crictl ps -a' and 'journalctl -u kubelet' on "+hc.Name(),
			"waited %s for %s (last: %s)", timeout, what, last)
	}
	return err
}

// kubelet renews kubelet's client certificate (re-signed by the cluster CA for the same
// key, which never leaves the node) and its self-signed serving certificate (removed, so
// kubelet makes a new one), then restarts kubelet once. Running pods are not touched.
func (rn *renewer) kubelet(ctx context.Context, hc *engine.HostCtx) error {
	r := rn.r
	changed := false
	if rn.has("kubelet-client") {
		contents, problems, err := ReadHostCerts(ctx, hc.Conn, []string{kubeletClientPEM})
		if err != nil {
			return err
		}
		if p := problems[kubeletClientPEM]; p != "" {
			return engine.Errorf(hc.Name(), certsPhase, "kubelet has not joined the cluster: run `k4t apply`", "%s: %s", kubeletClientPEM, p)
		}
		// Same length as before: kube-controller-manager's --cluster-signing-duration
		// (kubelet's own rotations) or kubeadm's validity (the first one) decided it.
		newCert, err := certs.ResignPEM(r.State.PKI(), certs.KubernetesCA, contents[kubeletClientPEM], 0, r.Now())
		if err != nil {
			return fmt.Errorf("%s: %w", kubeletClientPEM, err)
		}
		upload := &engine.Change{Host: hc.Name(), Phase: certsPhase, Kind: engine.KindFile, Key: "file:" + kubeletPKI + "/k4t-renewed-client.crt",
			Desc: "upload the renewed kubelet client certificate", Secret: true,
			Apply: func(ctx context.Context, h transport.Host) error {
				_, err := h.Put(ctx, transport.File{Path: kubeletPKI + "/k4t-renewed-client.crt", Mode: 0o600, Content: newCert})
				return err
			}}
		if err := engine.ApplyChange(ctx, r, hc.Conn, upload); err != nil {
			return err
		}
		if err := rn.cmd(ctx, hc, "install the renewed kubelet client certificate", kubeletClientSwap, 30*time.Second); err != nil {
			return err
		}
		changed = true
	}
	if rn.has("kubelet-serving") {
		if err := rn.cmd(ctx, hc, "remove kubelet's self-signed serving certificate (kubelet makes a new one)",
			"rm -f "+kubeletServing+" "+kubeletPKI+"/kubelet.key", 30*time.Second); err != nil {
			return err
		}
		changed = true
	}
	if !changed {
		return nil
	}
	c := engine.RestartChange(hc, "kubelet")
	c.Phase = certsPhase
	if err := engine.ApplyChange(ctx, r, hc.Conn, c); err != nil {
		return err
	}
	return rn.wait(ctx, hc, rn.readyTO, "kubelet's new serving certificate", func() (bool, string, error) {
		_, problems, err := ReadHostCerts(ctx, hc.Conn, []string{kubeletServing})
		if err != nil {
			return false, "", err
		}
		return problems[kubeletServing] == "", kubeletServing + " " + problems[kubeletServing], nil
	})
}

// kubeletClientSwap writes a new kubelet-client-<time>.pem (renewed certificate + the
// node's existing key) and points kubelet-client-current.pem at it, as kubelet's own
// rotation does.
const kubeletClientSwap = `set -e; d=` + kubeletPKI + `; n=$d/kubelet-client-$(date +%Y-%m-%d-%H-%M-%S).pem; umask 077
{ cat $d/k4t-renewed-client.crt; sed -n '/-----BEGIN .*PRIVATE KEY-----/,/-----END .*PRIVATE KEY-----/p' $d/kubelet-client-current.pem; } > $n.tmp
mv $n.tmp $n; ln -sfn $n $d/kubelet-client-current.pem; rm -f $d/k4t-renewed-client.crt`

const haproxySocket = "/run/haproxy/admin.sock"

// etcdStatus is one entry of `etcdctl endpoint status -w json`.
type etcdStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
		} `json:"header"`
		Leader uint64 `json:"leader"`
	} `json:"Status"`
}

// moveEtcdLeader hands etcd leadership to another member when h leads, so restarting h
// costs no election (requests would wait or fail for about an election timeout).
func (rn *renewer) moveEtcdLeader(ctx context.Context, h *v1alpha1.Host) error {
	members := rn.r.Cluster.EtcdMembers()
	if len(members) < 2 {
		return nil
	}
	out, err := Etcdctl(ctx, rn.r, members[0], "endpoint status -w json")
	if err != nil {
		return engine.WrapPhase(certsPhase, members[0].Name, fmt.Errorf("etcd endpoint status: %w", err))
	}
	var sts []etcdStatus
	if err := json.Unmarshal([]byte(out), &sts); err != nil {
		return engine.Errorf(members[0].Name, certsPhase, "", "parsing etcdctl endpoint status: %v", err)
	}
	self := "https://" + h.InternalAddress + ":2379"
	var selfID, leader, other uint64
	for _, s := range sts {
		leader = max(leader, s.Status.Leader)
		if s.Endpoint == self {
			selfID = s.Status.Header.MemberID
		}
	}
	if selfID == 0 || leader != selfID {
		return nil
	}
	for _, s := range sts {
		if s.Endpoint != self && s.Status.Header.MemberID != 0 {
			other = s.Status.Header.MemberID
			break
		}
	}
	if other == 0 {
		return nil
	}
	conn, err := rn.r.Connect(ctx, members[0])
	if err != nil {
		return err
	}
	move := engine.CommandChange(&engine.HostCtx{Host: members[0], Conn: conn, Run: rn.r}, certsPhase,
		fmt.Sprintf("etcd move-leader %x (away from %s before its restart)", other, h.Name), etcdctlCmd(members, fmt.Sprintf("move-leader %x", other)))
	if err := engine.ApplyChange(ctx, rn.r, conn, move); err != nil {
		return engine.WrapPhase(certsPhase, h.Name, fmt.Errorf("etcd move-leader away from %s: %w", h.Name, err))
	}
	return nil
}
