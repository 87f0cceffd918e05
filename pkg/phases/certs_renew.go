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
	"k4t.io/k4t/pkg/state"
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

// AllCertNames lists every name `k4t certs renew` accepts besides "all".
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

// RenewOptions tune a CertsRenewal.
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
	ReadyTimeout time.Duration
	// PodRestartTimeout bounds the wait for static pods' new containers;
	// zero means 6 min, beyond kubelet's longest restart back-off (5 min).
	PodRestartTimeout time.Duration
	// Poll is the interval of every wait; zero means 1s.
	Poll time.Duration
}

// RenewResult says what a CertsRenewal did.
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

// CertsRenewal is what the phases of `k4t certs renew` (pkg/action) share:
// the options, the certificate names, and what the run did.
type CertsRenewal struct {
	Opts   RenewOptions
	Result RenewResult
	names  []string
}

// NewCertsRenewal checks o's names and fills in the default timeouts.
func NewCertsRenewal(o RenewOptions) (*CertsRenewal, error) {
	names, err := ParseCertNames(o.Names)
	if err != nil {
		return nil, err
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	if o.PodRestartTimeout <= 0 {
		o.PodRestartTimeout = 6 * time.Minute
	}
	return &CertsRenewal{Opts: o, names: names}, nil
}

func (c *CertsRenewal) has(ns ...string) bool {
	return slices.ContainsFunc(ns, func(n string) bool { return slices.Contains(c.names, n) })
}

// renewer is a renewal at work in one run.
type renewer struct {
	*CertsRenewal
	r *engine.Run
}

func (c *CertsRenewal) in(r *engine.Run) *renewer { return &renewer{CertsRenewal: c, r: r} }

// ---- certs renew, phase by phase (the order is pkg/action's CertsRenew) ----

// CertsResume finishes what a killed renew started, before anything else and
// even when nothing expires any more: masters it left out of HAProxy go back,
// static pods it paused come back, restarts it journaled are done (the
// engine re-plans those of this phase's name, "certs").
type CertsResume struct{}

func (*CertsResume) Name() string  { return certsPhase }
func (*CertsResume) Title() string { return "Finish what an interrupted renew started" }
func (*CertsResume) Hosts(r *engine.Run) []*v1alpha1.Host {
	return slices.DeleteFunc(slices.Clone(engine.AllHosts(r)), func(h *v1alpha1.Host) bool {
		return !isMember(r.Cluster, h) && !h.HasRole(v1alpha1.RoleMaster) && !h.HasRole(v1alpha1.RoleWorker)
	})
}
func (*CertsResume) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	var out []*engine.Change
	if hc.Host.HasRole(v1alpha1.RoleMaster) {
		res, err := hc.Conn.Run(ctx, transport.Cmd{Command: fmt.Sprintf("ls %s/*.yaml 2>/dev/null; true", pausedDir), ReadOnly: true})
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(res.Stdout)) != "" {
			cmd := fmt.Sprintf("for f in %[1]s/*.yaml; do [ -e \"$f\" ] && mv -n \"$f\" %[2]s/; done; true", pausedDir, manifestsDir)
			out = append(out, engine.CommandChange(hc, certsPhase, "restore the static pod manifests an interrupted renew paused", cmd))
		}
	}
	pending, err := state.PendingIntents(r.State.Journal())
	if err != nil {
		return nil, fmt.Errorf("reading the journal: %w", err)
	}
	name := hc.Name()
	if slices.ContainsFunc(pending, func(p state.Pending) bool { return p.Phase == certsPhase && p.Key == lbOutKey(name) }) {
		out = append(out, &engine.Change{Kind: engine.KindCommand, Key: "step:haproxy-in", Desc: "put " + name + " back into HAProxy (an interrupted renew left it out)",
			Apply: func(ctx context.Context, _ transport.Host) error { return HAProxyIn(ctx, r, certsPhase, name) }})
	}
	return out, nil
}

// CertsExpiring decides, with --if-expiring-within, whether anything is renewed:
// the rest of the pipeline runs only when some certificate expires within it.
type CertsExpiring struct{ Renewal *CertsRenewal }

func (*CertsExpiring) Name() string  { return "certs-check" }
func (*CertsExpiring) Title() string { return "Certificates expiring soon decide whether to renew" }
func (p *CertsExpiring) ShouldRun(*engine.Run) bool {
	return p.Renewal.Opts.IfExpiringWithin > 0
}
func (*CertsExpiring) CheckInPlan() {}
func (p *CertsExpiring) Check(ctx context.Context, r *engine.Run) error {
	within := p.Renewal.Opts.IfExpiringWithin
	rows := CheckAllCerts(ctx, r)
	need, which := certs.NeedsRenewal(rows, within)
	for _, row := range rows {
		if row.Err != "" {
			r.Events.Warnf(certsPhase, row.Host, "%s: %s", row.Name, row.Err)
		}
	}
	if !need {
		p.Renewal.Result.Skipped = true
		r.Events.Infof(certsPhase, "", "no certificate expires within %s: nothing to renew", within)
		return nil
	}
	p.Renewal.Result.Expiring = which
	r.Events.Infof(certsPhase, "", "%d certificate(s) expire within %s (first: %s): renewing", len(which), within, which[0])
	return nil
}

// CertsLocal renews k4t's etcd certificates in the state dir, keeping their
// keys; the roll pushes them.
type CertsLocal struct{ Renewal *CertsRenewal }

func (*CertsLocal) Name() string  { return "certs-local" }
func (*CertsLocal) Title() string { return "k4t's etcd certificates in the state dir (keys kept)" }
func (p *CertsLocal) ShouldRun(*engine.Run) bool {
	return !p.Renewal.Result.Skipped && p.Renewal.has(EtcdCertNames...)
}
func (*CertsLocal) CheckInPlan() {}
func (p *CertsLocal) Check(_ context.Context, r *engine.Run) error {
	return p.Renewal.in(r).renewLocal()
}

// CertsRoll renews, one host at a time, external etcd members, then masters
// (the first master last, so the one that holds super-admin.conf and answers
// k4t's kubectl changes when the others are back). A master leaves HAProxy
// first and comes back after its /readyz and etcd health.
type CertsRoll struct{ Renewal *CertsRenewal }

func (*CertsRoll) Name() string { return "certs-roll" }
func (*CertsRoll) Title() string {
	return "Etcd members and masters, one at a time: out of HAProxy, renew, restart what uses them, health, back"
}
func (p *CertsRoll) ShouldRun(*engine.Run) bool { return !p.Renewal.Result.Skipped }
func (*CertsRoll) Hosts(r *engine.Run) []*v1alpha1.Host {
	c := r.Cluster
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
	return append(out, masters...)
}
func (p *CertsRoll) Plan(_ context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	return p.Renewal.in(hc.Run).planHost(hc), nil
}
func (p *CertsRoll) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	return p.Renewal.in(r).roll(ctx, plans)
}

// CertsRollWorkers renews kubelet's certificates on the workers, one at a time.
type CertsRollWorkers struct{ Renewal *CertsRenewal }

func (*CertsRollWorkers) Name() string  { return "certs-workers" }
func (*CertsRollWorkers) Title() string { return "Workers' kubelet certificates, one node at a time" }
func (p *CertsRollWorkers) ShouldRun(*engine.Run) bool {
	return !p.Renewal.Result.Skipped && p.Renewal.has(KubeletCertNames...)
}
func (*CertsRollWorkers) Hosts(r *engine.Run) []*v1alpha1.Host {
	return workersOnly(r)
}
func (p *CertsRollWorkers) Plan(_ context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	return p.Renewal.in(hc.Run).planHost(hc), nil
}
func (p *CertsRollWorkers) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	return p.Renewal.in(r).roll(ctx, plans)
}

// CertsKubeconfig refreshes the bastion's admin kubeconfig after a renewal of
// kubeadm's or etcd's certificates.
type CertsKubeconfig struct{ Renewal *CertsRenewal }

func (*CertsKubeconfig) Name() string  { return "certs-kubeconfig" }
func (*CertsKubeconfig) Title() string { return "The bastion's admin kubeconfig" }
func (p *CertsKubeconfig) ShouldRun(*engine.Run) bool {
	return !p.Renewal.Result.Skipped && (p.Renewal.has(KubeadmCertNames...) || p.Renewal.has(EtcdCertNames...))
}
func (p *CertsKubeconfig) Check(ctx context.Context, r *engine.Run) error {
	if err := (&Kubeconfig{}).Check(ctx, r); err != nil {
		return engine.WrapPhase(certsPhase, r.Cluster.FirstMaster().Name, fmt.Errorf("refreshing the bastion's kubeconfig: %w", err))
	}
	return nil
}

// renewLocal renews k4t's etcd certificates in the state dir, keeping their
// keys; a plan only says which.
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
	validity := rn.Opts.Validity
	if validity <= 0 {
		validity = rn.r.Cluster.Spec.Certificates.Validity.Duration
	}
	if rn.r.DryRun {
		engine.EmitPlanned(rn.r, &engine.Change{Phase: "certs-local", Kind: engine.KindFile,
			Desc: fmt.Sprintf("renew %d etcd certificate(s) in %s, keeping their keys: %s", len(rels), rn.r.State.PKI(), strings.Join(rels, ", "))})
		return nil
	}
	for _, rel := range rels {
		if err := certs.RenewLeaf(rn.r.State.PKI(), rel, validity, rn.r.Now()); err != nil {
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

// roll applies the hosts' plans one at a time, in order; the first failure
// stops it, and the hosts not reached yet are untouched.
func (rn *renewer) roll(ctx context.Context, plans []*engine.HostPlan) error {
	r := rn.r
	for _, pl := range plans {
		if len(pl.Changes) == 0 {
			continue
		}
		start := time.Now()
		r.Events.Infof(certsPhase, pl.Name(), "renewing certificates")
		if err := engine.ApplyChanges(ctx, r, pl); err != nil {
			return rn.stoppedAt(ctx, pl.HostCtx, err)
		}
		rn.Result.Renewed = append(rn.Result.Renewed, pl.Name())
		r.Events.Infof(certsPhase, pl.Name(), "certificates renewed in %s", time.Since(start).Round(time.Second))
	}
	return nil
}

// stoppedAt ends a roll that failed on hc's host. A master out of HAProxy goes
// back only if its kube-apiserver answers /readyz now; otherwise it stays out,
// and the next renew puts it back first (the intent is in the journal).
func (rn *renewer) stoppedAt(ctx context.Context, hc *engine.HostCtx, err error) error {
	r := rn.r
	left := ""
	if hc.Host.HasRole(v1alpha1.RoleMaster) && len(r.Cluster.SLBs()) > 0 {
		ctx := context.WithoutCancel(ctx)
		pending, jerr := state.PendingIntents(r.State.Journal())
		out := jerr == nil && slices.ContainsFunc(pending, func(p state.Pending) bool { return p.Phase == certsPhase && p.Key == lbOutKey(hc.Name()) })
		if out {
			left = ", which is left out of HAProxy (its /readyz does not answer)"
			if apiServerReady(ctx, hc, "https://"+hc.Host.InternalAddress+":6443") == nil {
				if e := HAProxyIn(ctx, r, certsPhase, hc.Name()); e == nil {
					left = " (back in HAProxy: its /readyz answers)"
				}
			}
		}
	}
	if len(rn.Result.Renewed) > 0 {
		left += fmt.Sprintf("; renewed before it: %s", strings.Join(rn.Result.Renewed, ", "))
	}
	return engine.Errorf(hc.Name(), certsPhase,
		"fix the cause and run `k4t certs renew` again: it first finishes what this run left, then renews from the start (hosts not reached yet are untouched)",
		"renew stopped at %s%s: %w", hc.Name(), left, err)
}

// planHost lists one host's renewal, step by step. What it restarts follows
// from the names: each renewed certificate is new, so its users restart.
func (rn *renewer) planHost(hc *engine.HostCtx) []*engine.Change {
	r, h, name := rn.r, hc.Host, hc.Name()
	master := h.HasRole(v1alpha1.RoleMaster)
	member := isMember(r.Cluster, h)
	cs := engine.NewChanges(hc, certsPhase)
	step := func(desc string, apply func(ctx context.Context) error) { cs.Add(stepChange(desc, apply)) }
	if master && len(r.Cluster.SLBs()) > 0 {
		cs.Add(haproxyOutStep(r, certsPhase, h))
	}
	pods := map[string]bool{}
	if names := rn.kubeadmNames(hc); master && len(names) > 0 {
		step("kubeadm certs renew "+strings.Join(names, " "), func(ctx context.Context) error { return rn.kubeadm(ctx, hc, names) })
		for _, n := range names {
			if p := podsUsing[n]; p != "" {
				pods[p] = true
			}
		}
	}
	if pushed := rn.etcdFiles(hc); len(pushed) > 0 {
		var ns []string
		for _, f := range pushed {
			ns = append(ns, f.name)
			if f.name == "apiserver-etcd-client" {
				pods["kube-apiserver"] = true
			}
		}
		step("push the renewed "+strings.Join(ns, ", ")+" from the state dir", func(ctx context.Context) error { return rn.pushEtcd(ctx, hc, pushed) })
	}
	if member && rn.has("etcd-server", "etcd-peer") {
		step("restart etcd (leadership moved away first if "+name+" leads) and wait for etcd health", func(ctx context.Context) error {
			if err := rn.moveEtcdLeader(ctx, h); err != nil {
				return err
			}
			c := engine.RestartChange(hc, "etcd")
			c.Phase = certsPhase
			if err := engine.ApplyChange(ctx, r, hc.Conn, c); err != nil {
				return err
			}
			return WaitEtcdHealthy(ctx, r, etcdHealthTimeout)
		})
	}
	if len(pods) > 0 {
		ps := sortedKeys(pods)
		step("restart the static pods "+strings.Join(ps, ", ")+" (their containers stopped; kubelet starts new ones)", func(ctx context.Context) error {
			return rn.restartPods(ctx, hc, ps)
		})
	}
	if (master || h.HasRole(v1alpha1.RoleWorker)) && rn.has(KubeletCertNames...) {
		step("renew kubelet's "+strings.Join(slices.DeleteFunc(slices.Clone(KubeletCertNames), func(n string) bool { return !rn.has(n) }), ", ")+" certificate(s) and restart kubelet",
			func(ctx context.Context) error { return rn.kubelet(ctx, hc) })
	}
	if len(cs.List) == 0 {
		return nil
	}
	if master {
		step("wait for "+name+"'s /readyz", func(ctx context.Context) error {
			return WaitAPIServerReady(ctx, hc, "https://"+h.InternalAddress+":6443", rn.Opts.ReadyTimeout)
		})
	}
	if member {
		step("wait for etcd health", func(ctx context.Context) error { return WaitEtcdHealthy(ctx, r, etcdHealthTimeout) })
	}
	if master && len(r.Cluster.SLBs()) > 0 {
		cs.Add(haproxyBackStep(r, certsPhase, name, time.Minute))
	}
	return cs.List
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

// kubeadmNames lists the kubeadm certificates renewed on a master
// (super-admin.conf only on the first, which holds it).
func (rn *renewer) kubeadmNames(hc *engine.HostCtx) []string {
	var names []string
	first := hc.Name() == rn.r.Cluster.FirstMaster().Name
	for _, n := range KubeadmCertNames {
		if rn.has(n) && (n != "super-admin.conf" || first) {
			names = append(names, n)
		}
	}
	return names
}

// kubeadm renews kubeadm's certificates names on a master.
func (rn *renewer) kubeadm(ctx context.Context, hc *engine.HostCtx, names []string) error {
	first := hc.Name() == rn.r.Cluster.FirstMaster().Name
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
		return engine.Errorf(hc.Name(), certsPhase, "run `kubeadm certs check-expiration` on "+hc.Name()+"; kubeadm reads its ClusterConfiguration through the API, so the API must answer",
			"%v", err)
	}
	return nil
}

// etcdFile is one of k4t's etcd certificates on a host.
type etcdFile struct{ name, rel, remote string }

// etcdFiles lists the renewed etcd certificates that hc's host holds.
func (rn *renewer) etcdFiles(hc *engine.HostCtx) []etcdFile {
	var files []etcdFile
	if isMember(rn.r.Cluster, hc.Host) {
		files = append(files,
			etcdFile{"etcd-server", certs.EtcdServer(hc.Name()) + ".crt", templates.EtcdServerCert},
			etcdFile{"etcd-peer", certs.EtcdPeer(hc.Name()) + ".crt", templates.EtcdPeerCert},
			etcdFile{"etcd-healthcheck-client", certs.EtcdHealthcheck + ".crt", etcdHealthCert})
	}
	if hc.Host.HasRole(v1alpha1.RoleMaster) {
		files = append(files, etcdFile{"apiserver-etcd-client", certs.APIServerEtcd + ".crt", templates.KubeadmEtcdClientCert})
	}
	return slices.DeleteFunc(files, func(f etcdFile) bool { return !rn.has(f.name) })
}

// pushEtcd writes the renewed etcd certificates files from the state dir.
func (rn *renewer) pushEtcd(ctx context.Context, hc *engine.HostCtx, files []etcdFile) error {
	for _, x := range files {
		file, o, err := pkiFile(rn.r, x.rel, x.remote)
		if err != nil {
			return err
		}
		c, err := engine.FileChange(ctx, hc, certsPhase, file, o)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		if err := engine.ApplyChange(ctx, rn.r, hc.Conn, c); err != nil {
			return err
		}
	}
	return nil
}

const (
	pausedDir = "/etc/kubernetes/k4t/paused-manifests"
	crictl    = "crictl --runtime-endpoint unix://" + templates.ContainerdSocket
)

// restartPods restarts static pods so that they read the renewed files: each pod's
// running container is stopped, with a short grace (the master is out of HAProxy, and its
// kube-apiserver would wait out its 30 s), and kubelet starts a new one at once, as for any
// container of a pod that must always run; then every pod must run a container that is
// not one of the old ones. kubeadm's documented way, moving the manifests aside and back,
// costs two rounds of kubelet's 20 s file check while the pods are down (an older k4t's
// renew killed half-way is still put right: see the manifests paused check above).
func (rn *renewer) restartPods(ctx context.Context, hc *engine.HostCtx, pods []string) error {
	filter := "^(" + strings.Join(pods, "|") + ")$"
	before, err := hc.Conn.Run(ctx, transport.Cmd{Command: crictl + " ps -q --name '" + filter + "'", Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return err
	}
	old := strings.Fields(string(before.Stdout))
	if len(old) > 0 {
		// A container gone since the listing was replaced already: that
		// is no failure, and a stop that did fail shows as the wait below.
		if err := rn.cmd(ctx, hc, "stop the containers of "+strings.Join(pods, ", ")+" (kubelet starts new ones)",
			crictl+" stop --timeout 5 "+strings.Join(old, " ")+" >/dev/null 2>&1 || true", time.Minute); err != nil {
			return err
		}
	}
	// kubelet's restart back-off (up to 5 min for a container that exited
	// often lately, e.g. a controller-manager that lost its lease) is waited out.
	return rn.wait(ctx, hc, rn.Opts.PodRestartTimeout, "new containers of "+strings.Join(pods, ", "), func() (bool, string, error) {
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
	err := engine.Poll(ctx, timeout, rn.Opts.Poll, func(context.Context) (bool, error) {
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
	// The Node's last status before the restart: the restarted kubelet's
	// first status comes after it (both times are the node's own clock).
	// Without the API (a cluster whose admin.conf had expired) there is no
	// Node to wait for: the roll goes on, and says so.
	var before *time.Time
	if !r.DryRun {
		if n, err := nodeNow(ctx, r, hc.Name()); err == nil {
			t := readyCondition(n).LastHeartbeatTime.Time
			before = &t
		} else {
			r.Events.Warnf(certsPhase, hc.Name(), "not waiting for node %s to be Ready after kubelet's restart: the API did not answer: %v", hc.Name(), err)
		}
	}
	c := engine.RestartChange(hc, "kubelet")
	c.Phase = certsPhase
	if err := engine.ApplyChange(ctx, r, hc.Conn, c); err != nil {
		return err
	}
	if err := rn.wait(ctx, hc, rn.Opts.ReadyTimeout, "kubelet's new serving certificate", func() (bool, string, error) {
		_, problems, err := ReadHostCerts(ctx, hc.Conn, []string{kubeletServing})
		if err != nil {
			return false, "", err
		}
		return problems[kubeletServing] == "", kubeletServing + " " + problems[kubeletServing], nil
	}); err != nil || before == nil {
		return err
	}
	// A restarted kubelet may report its Node NotReady until its first
	// container runtime check (seen for seconds on a loaded lab), which
	// marks the node's pods not ready: the next node waits until this one
	// is Ready again, so no two are out at once.
	return rn.wait(ctx, hc, rn.Opts.ReadyTimeout, "node "+hc.Name()+" Ready after kubelet's restart", func() (bool, string, error) {
		n, err := nodeNow(ctx, r, hc.Name())
		if err != nil {
			return false, "", err
		}
		rc := readyCondition(n)
		return nodeReady(n) && rc.LastHeartbeatTime.After(*before),
			fmt.Sprintf("Ready=%s (%s) since %s", rc.Status, rc.Reason, rc.LastHeartbeatTime.UTC().Format(time.TimeOnly)), nil
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
			Revision int64  `json:"revision"`
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
