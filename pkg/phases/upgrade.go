package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// `k4t upgrade` (pkg/action.Upgrade): a preflight that changes nothing, an
// etcd snapshot, the new images on every node, then the masters one at a
// time and the workers in batches. Every step of a node is derived from what
// the node runs now (its control-plane manifests, its kubelet's version),
// and what a later plan cannot see (a cordon, a master out of HAProxy) is
// journaled, so a re-run after a failure or a kill -9 carries on where the
// last one stopped. A failure stops the roll and leaves the failing node
// cordoned (and, for a master, out of HAProxy): the finished nodes serve.

const upgradePhase = "upgrade"

// UpgradeOptions tune the upgrade.
type UpgradeOptions struct {
	// Drain tunes each node's drain; its Timeout is never unbounded.
	Drain DrainOptions
	// MaxUnavailable workers are upgraded at once; 0 means 1.
	MaxUnavailable int
	// KeepSnapshots is how many etcd snapshots the state dir keeps; 0 means 5.
	KeepSnapshots int
	// ReadyTimeout bounds each node's wait for health after its upgrade; 0 means 5m.
	ReadyTimeout time.Duration
	// CertWindow: a certificate expiring within it fails the preflight; 0 means 24h.
	CertWindow time.Duration
}

func (o *UpgradeOptions) readyTimeout() time.Duration {
	if o.ReadyTimeout > 0 {
		return o.ReadyTimeout
	}
	return 5 * time.Minute
}

const kubeadmUpgradeConfigPath = "/etc/kubernetes/k4t/kubeadm-upgrade.yaml"

// controlPlaneManifests are the static pods `kubeadm upgrade` rewrites (etcd is k4t's).
var controlPlaneManifests = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

var manifestImageRE = regexp.MustCompile(`image:\s*\S+/(kube-[a-z-]+):(v[0-9][^\s"']*)`)

// targetVersion is the inventory's Kubernetes version.
func targetVersion(r *engine.Run) (*version.Version, error) {
	v, err := version.ParseSemantic(r.Cluster.Spec.Kubernetes.Version)
	if err != nil {
		return nil, fmt.Errorf("spec.kubernetes.version %q: %w", r.Cluster.Spec.Kubernetes.Version, err)
	}
	return v, nil
}

// controlPlaneVersions reads the version of each control-plane static pod on
// master hc from its manifest; a missing manifest is absent from the map.
func controlPlaneVersions(ctx context.Context, hc *engine.HostCtx) (map[string]*version.Version, error) {
	out := map[string]*version.Version{}
	for _, name := range controlPlaneManifests {
		b, err := hc.Conn.Get(ctx, manifestsDir+"/"+name+".yaml")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, m := range manifestImageRE.FindAllStringSubmatch(string(b), -1) {
			if m[1] == name {
				v, err := version.ParseSemantic(m[2])
				if err != nil {
					return nil, fmt.Errorf("%s.yaml: image tag %q: %w", name, m[2], err)
				}
				out[name] = v
			}
		}
	}
	return out, nil
}

// controlPlaneAt says whether every control-plane manifest on hc is at v.
func controlPlaneAt(ctx context.Context, hc *engine.HostCtx, v *version.Version) (bool, error) {
	cp, err := controlPlaneVersions(ctx, hc)
	if err != nil {
		return false, err
	}
	for _, name := range controlPlaneManifests {
		if cp[name] == nil || !cp[name].EqualTo(v) {
			return false, nil
		}
	}
	return true, nil
}

// upgradeApplied says whether master hc's part of the upgrade to v is
// done: its control plane is at v and, on the first master, `kubeadm
// upgrade apply` finished, as its done-marker says; a run killed in any of
// its steps (static pods, configs, token, addons) applies again. (kubeadm
// upgrades the kube-proxy and CoreDNS addons only with the last master's
// `kubeadm upgrade node`.)
func upgradeApplied(ctx context.Context, hc *engine.HostCtx, v *version.Version) (bool, error) {
	at, err := controlPlaneAt(ctx, hc, v)
	if err != nil || !at || hc.Name() != hc.Run.Cluster.FirstMaster().Name {
		return at, err
	}
	fi, err := hc.Conn.Stat(ctx, upgradeAppliedMarker(v))
	return fi.Exists, err
}

// upgradeAppliedMarker is written on the first master when `kubeadm upgrade
// apply` to v succeeded.
func upgradeAppliedMarker(v *version.Version) string {
	return "/etc/kubernetes/k4t/upgrade-apply-" + vs(v) + ".done"
}

// vs is v as Kubernetes writes it: v1.37.2.
func vs(v *version.Version) string { return "v" + v.String() }

// getNode reads one Node through the API, retrying for up to a minute: on
// a single master the API server restarts with its upgrade.
func getNode(ctx context.Context, r *engine.Run, name string) (*corev1.Node, error) {
	c, err := kubeClient(ctx, r)
	if err != nil {
		return nil, err
	}
	var n *corev1.Node
	var last error
	err = engine.Poll(ctx, time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		n, last = c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(last) {
			return false, last
		}
		return last == nil, nil
	})
	if errors.Is(err, engine.ErrTimeout) {
		return nil, fmt.Errorf("reading node %s through the API for a minute: %w", name, last)
	}
	return n, err
}

// kubeletAt says whether node n's kubelet reports version v.
func kubeletAt(n *corev1.Node, v *version.Version) bool {
	kv, err := version.ParseSemantic(n.Status.NodeInfo.KubeletVersion)
	return err == nil && kv.EqualTo(v)
}

// ---- preflight ----

// UpgradeCheck is the upgrade's preflight: it changes nothing and reports
// every problem it finds at once, each with its host and fix.
type UpgradeCheck struct{ Opts *UpgradeOptions }

func (*UpgradeCheck) Name() string { return "upgrade-check" }
func (*UpgradeCheck) Title() string {
	return "Upgrade preflight: versions and skew, health, certificates, artifacts, PodDisruptionBudgets"
}
func (*UpgradeCheck) CheckInPlan() {}

func (p *UpgradeCheck) Check(ctx context.Context, r *engine.Run) error {
	target, err := targetVersion(r)
	if err != nil {
		return engine.Errorf("", p.Name(), "set spec.kubernetes.version to a release like v1.37.2", "%v", err)
	}
	var problems []string
	add := func(host, format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		if host != "" {
			msg = host + ": " + msg
		}
		problems = append(problems, msg)
	}
	// Versions: the control plane moves one minor at a time and never back.
	behind := 0
	for _, m := range r.Cluster.Masters() {
		conn, err := r.Connect(ctx, m)
		if err != nil {
			return engine.WrapPhase(p.Name(), m.Name, err)
		}
		cp, err := controlPlaneVersions(ctx, &engine.HostCtx{Host: m, Conn: conn, Run: r})
		if err != nil {
			return engine.WrapPhase(p.Name(), m.Name, err)
		}
		api := cp["kube-apiserver"]
		switch {
		case api == nil:
			add(m.Name, "no kube-apiserver manifest: the control plane is not set up — run `k4t apply` first")
		case api.GreaterThan(target):
			add(m.Name, "runs kube-apiserver %s: a downgrade to %s is refused — restore an etcd snapshot taken before the upgrade instead", vs(api), vs(target))
		case target.Major() != api.Major() || target.Minor() > api.Minor()+1:
			add(m.Name, "runs kube-apiserver %s: %s skips a minor — upgrade one minor at a time (set v%d.%d.x first, or pass --step to go through each minor whose artifact set is here)", vs(api), vs(target), api.Major(), api.Minor()+1)
		case api.LessThan(target):
			behind++
		}
	}
	// Nodes: every inventory node is in the cluster and Ready; no kubelet is
	// ahead of the target (after the upgrade every kubelet is at it).
	nodes, err := listNodes(ctx, r)
	if err != nil {
		return engine.WrapPhase(p.Name(), r.Cluster.FirstMaster().Name, err)
	}
	byName := map[string]*corev1.Node{}
	for i := range nodes {
		byName[nodes[i].Name] = &nodes[i]
	}
	for _, h := range kubeNodes(r) {
		n := byName[h.Name]
		if n == nil {
			add(h.Name, "not a node of the cluster — run `k4t apply` to join it first")
			continue
		}
		if !nodeReady(n) {
			add(h.Name, "node is not Ready — fix it first (journalctl -u kubelet)")
		}
		kv, err := version.ParseSemantic(n.Status.NodeInfo.KubeletVersion)
		switch {
		case err != nil:
			add(h.Name, "kubelet version %q: %v", n.Status.NodeInfo.KubeletVersion, err)
		case kv.GreaterThan(target):
			add(h.Name, "kubelet %s is newer than the target %s — a kubelet may never be newer than the API server", vs(kv), vs(target))
		case kv.LessThan(target):
			behind++
		}
	}
	if err := waitEtcd(ctx, r, r.Cluster.EtcdMembers()[0], r.Cluster.EtcdMembers(), len(r.Cluster.EtcdMembers()), 20*time.Second); err != nil {
		add("", "etcd is not healthy with all members: %v — fix it first (`k4t apply` repairs a member)", err)
	}
	// etcd: kubeadm for v1.3x supports etcd 3.5 and later.
	if out, err := Etcdctl(ctx, r, r.Cluster.EtcdMembers()[0], "version"); err == nil {
		if m := regexp.MustCompile(`etcdctl version: (\S+)`).FindStringSubmatch(out); m != nil {
			if ev, err := version.ParseGeneric(m[1]); err == nil && ev.LessThan(version.MustParseGeneric("3.5.0")) {
				add(r.Cluster.EtcdMembers()[0].Name, "etcd %s is older than 3.5, which Kubernetes %s needs — raise the etcd version and `k4t apply` first", ev, vs(target))
			}
		}
	}
	// Certificates must outlive the upgrade window.
	window := p.Opts.CertWindow
	if window <= 0 {
		window = 24 * time.Hour
	}
	if need, which := certs.NeedsRenewal(CheckAllCerts(ctx, r), window); need {
		add("", "certificate(s) expire within %s (%s) — run `k4t certs renew` first", window, strings.Join(which, ", "))
	}
	// The target's binaries are in the artifact store and their sha256 verifies.
	for _, name := range []string{"kubeadm", "kubelet", "kubectl"} {
		if _, err := artifactFile(ctx, r, name); err != nil {
			add("", "artifact %s %s: %v — build or fetch the %s artifact set (make artifacts K8S_VERSION=%s)", name, vs(target), err, vs(target), vs(target))
		} else if a, _ := r.Options.Artifacts.Manifest().Get(name); a.Version != "" && a.Version != vs(target) {
			add("", "artifact %s is %s, not the target %s — point spec.artifacts at the %s set", name, a.Version, vs(target), vs(target))
		}
	}
	if len(problems) > 0 {
		return engine.Errorf("", p.Name(), "fix the above and re-run; no host was changed",
			"%d problem(s) before upgrading to %s:\n  - %s", len(problems), vs(target), strings.Join(problems, "\n  - "))
	}
	if behind == 0 {
		r.Events.Infof(p.Name(), "", "every node runs %s already", vs(target))
		return nil
	}
	// A PodDisruptionBudget that allows no disruption now is named up front:
	// the drain of its node will wait --drain-timeout and then stop.
	c, err := kubeClient(ctx, r)
	if err != nil {
		return err
	}
	for _, h := range kubeNodes(r) {
		for _, b := range blockingPDBs(ctx, c, h.Name) {
			r.Events.Warnf(p.Name(), h.Name, "PodDisruptionBudget %s allows no disruption now: draining %s will wait up to %s and then stop the upgrade", b, h.Name, p.Opts.Drain.Timeout)
		}
	}
	r.Events.Infof(p.Name(), "", "preflight passed: upgrading to %s", vs(target))
	return nil
}

// ControlPlaneVersion is the oldest kube-apiserver version among the
// masters, read from their manifests.
func ControlPlaneVersion(ctx context.Context, r *engine.Run) (string, error) {
	var oldest *version.Version
	for _, m := range r.Cluster.Masters() {
		conn, err := r.Connect(ctx, m)
		if err != nil {
			return "", engine.WrapPhase(upgradePhase, m.Name, err)
		}
		cp, err := controlPlaneVersions(ctx, &engine.HostCtx{Host: m, Conn: conn, Run: r})
		if err != nil {
			return "", engine.WrapPhase(upgradePhase, m.Name, err)
		}
		if v := cp["kube-apiserver"]; v != nil && (oldest == nil || v.LessThan(oldest)) {
			oldest = v
		}
	}
	if oldest == nil {
		return "", engine.Errorf("", upgradePhase, "run `k4t apply` first", "no master runs a kube-apiserver")
	}
	return vs(oldest), nil
}

// UpgradePath lists the versions `k4t upgrade --step` goes through from
// current to target: for each minor in between, the newest patch among
// available (the artifact sets at hand), then target. A minor with no set
// is an error that says which set to build.
func UpgradePath(current, target string, available []string) ([]string, error) {
	cur, err := version.ParseSemantic(current)
	if err != nil {
		return nil, err
	}
	tgt, err := version.ParseSemantic(target)
	if err != nil {
		return nil, err
	}
	if cur.Major() != tgt.Major() {
		return nil, fmt.Errorf("%s → %s crosses a major version", current, target)
	}
	var path []string
	for minor := cur.Minor() + 1; minor < tgt.Minor(); minor++ {
		var best *version.Version
		for _, a := range available {
			if v, err := version.ParseSemantic(a); err == nil && v.Major() == tgt.Major() && v.Minor() == minor && v.PreRelease() == "" && (best == nil || v.GreaterThan(best)) {
				best = v
			}
		}
		if best == nil {
			return nil, fmt.Errorf("no artifact set for v%d.%d, which %s → %s goes through — build one (make artifacts K8S_VERSION=v%d.%d.N)", tgt.Major(), minor, current, target, tgt.Major(), minor)
		}
		path = append(path, vs(best))
	}
	return append(path, target), nil
}

// ---- etcd snapshot ----

// UpgradeSnapshot takes a verified etcd snapshot into the state dir before
// any node is upgraded; nothing when every node runs the target already.
type UpgradeSnapshot struct{ Opts *UpgradeOptions }

func (*UpgradeSnapshot) Name() string  { return "etcd-snapshot" }
func (*UpgradeSnapshot) Title() string { return "etcd snapshot to the state dir, before the upgrade" }
func (*UpgradeSnapshot) Hosts(r *engine.Run) []*v1alpha1.Host {
	return r.Cluster.EtcdMembers()[:1]
}

func (p *UpgradeSnapshot) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	todo, err := upgradeLeft(ctx, r)
	if err != nil || len(todo) == 0 {
		return nil, err
	}
	// A re-run of an upgrade under way keeps the snapshot taken before it
	// began: the one to go back to.
	taken, _ := filepath.Glob(filepath.Join(SnapshotDir(r), "pre-upgrade-"+r.Cluster.Spec.Kubernetes.Version+"-*.db"))
	if len(taken) > 0 && len(todo) < len(kubeNodes(r)) {
		slices.Sort(taken)
		r.Events.Infof(p.Name(), "", "the upgrade is under way (%d node(s) left): keeping %s, taken before it began", len(todo), taken[0])
		return nil, nil
	}
	keep := p.Opts.KeepSnapshots
	if keep <= 0 {
		keep = 5
	}
	return []*engine.Change{EtcdSnapshotChange(r, p.Name(), hc.Host, "pre-upgrade-"+r.Cluster.Spec.Kubernetes.Version, keep, nil)}, nil
}

// upgradeLeft lists the nodes not at the target yet (control plane or
// kubelet), or left cordoned or out of HAProxy by an interrupted upgrade.
func upgradeLeft(ctx context.Context, r *engine.Run) ([]string, error) {
	var out []string
	for _, h := range kubeNodes(r) {
		conn, err := r.Connect(ctx, h)
		if err != nil {
			return nil, err
		}
		need, err := nodeNeedsUpgrade(ctx, &engine.HostCtx{Host: h, Conn: conn, Run: r})
		if err != nil {
			return nil, err
		}
		if need {
			out = append(out, h.Name)
		}
	}
	return out, nil
}

// nodeNeedsUpgrade: the node's kubelet or control plane is not at the
// target, or an interrupted upgrade left it cordoned or out of HAProxy.
func nodeNeedsUpgrade(ctx context.Context, hc *engine.HostCtx) (bool, error) {
	r := hc.Run
	target, err := targetVersion(r)
	if err != nil {
		return false, err
	}
	if pending, err := upgradePending(r, hc.Name()); err != nil || pending {
		return pending, err
	}
	n, err := getNode(ctx, r, hc.Name())
	if err != nil {
		return false, engine.WrapPhase(upgradePhase, hc.Name(), err)
	}
	if !kubeletAt(n, target) {
		return true, nil
	}
	if hc.Host.HasRole(v1alpha1.RoleMaster) {
		at, err := upgradeApplied(ctx, hc, target)
		return !at, err
	}
	return false, nil
}

// upgradePending says whether the journal holds an unfinished upgrade step
// of host (a cordon or a master out of HAProxy).
func upgradePending(r *engine.Run, host string) (bool, error) {
	if r.State == nil {
		return false, nil
	}
	pending, err := state.PendingIntents(r.State.Journal())
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(pending, func(p state.Pending) bool {
		return p.Host == host && p.Phase == upgradePhase
	}), nil
}

// ---- the roll ----

// UpgradeMasters upgrades the masters one at a time, the first master
// (`kubeadm upgrade apply`) first, the others with `kubeadm upgrade node`.
type UpgradeMasters struct{ Opts *UpgradeOptions }

func (*UpgradeMasters) Name() string { return "upgrade-masters" }
func (*UpgradeMasters) Title() string {
	return "Masters, one at a time: out of HAProxy, drain, kubeadm upgrade, kubelet, health, back"
}
func (*UpgradeMasters) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.Masters() }
func (p *UpgradeMasters) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	return planNodeUpgrade(ctx, hc, p.Opts)
}

// Apply rolls one master at a time, in inventory order; the first failure stops it.
func (p *UpgradeMasters) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	return rollBatches(ctx, r, plans, 1)
}

// UpgradeWorkers upgrades the workers, MaxUnavailable at a time.
type UpgradeWorkers struct{ Opts *UpgradeOptions }

func (*UpgradeWorkers) Name() string { return "upgrade-workers" }
func (*UpgradeWorkers) Title() string {
	return "Workers, in batches: drain, kubeadm upgrade node, kubelet, Ready, uncordon"
}
func (*UpgradeWorkers) Hosts(r *engine.Run) []*v1alpha1.Host { return workersOnly(r) }
func (p *UpgradeWorkers) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	return planNodeUpgrade(ctx, hc, p.Opts)
}
func (p *UpgradeWorkers) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	return rollBatches(ctx, r, plans, max(1, p.Opts.MaxUnavailable))
}

// rollBatches applies the plans n at a time, in order, and stops at the
// first batch with a failure.
func rollBatches(ctx context.Context, r *engine.Run, plans []*engine.HostPlan, n int) error {
	var todo []*engine.HostPlan
	for _, pl := range plans {
		if len(pl.Changes) > 0 {
			todo = append(todo, pl)
		}
	}
	for i := 0; i < len(todo); i += n {
		batch := todo[i:min(i+n, len(todo))]
		err := engine.ForEachHost(ctx, r, batch, func(ctx context.Context, pl *engine.HostPlan) error {
			start := time.Now()
			if err := engine.ApplyChanges(ctx, r, pl); err != nil {
				return stoppedAt(r, pl.Host, err)
			}
			r.Events.Infof(upgradePhase, pl.Name(), "upgraded %s in %s", pl.Name(), time.Since(start).Round(100*time.Millisecond))
			return recordVersion(r, pl.Name())
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// recordVersion notes in the state dir's versions.txt ("host version" per
// line) that host now runs the inventory's version: the state dir says what
// each host runs even when an upgrade stopped half-way.
func recordVersion(r *engine.Run, host string) error {
	mu, _ := r.Value("versions.txt", func() (any, error) { return &sync.Mutex{}, nil }) // workers finish in parallel
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	p := r.State.Path("versions.txt")
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	lines := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			lines[f[0]] = f[1]
		}
	}
	lines[host] = r.Cluster.Spec.Kubernetes.Version
	var out strings.Builder
	for _, h := range slices.Sorted(maps.Keys(lines)) {
		fmt.Fprintf(&out, "%s %s\n", h, lines[h])
	}
	return r.State.WriteFile(p, []byte(out.String()), 0o600)
}

// stoppedAt says what a failed node upgrade leaves behind.
func stoppedAt(r *engine.Run, h *v1alpha1.Host, err error) error {
	left := "left cordoned"
	if h.HasRole(v1alpha1.RoleMaster) && len(r.Cluster.SLBs()) > 0 {
		left = "left cordoned and out of HAProxy"
	}
	return engine.Errorf(h.Name, upgradePhase,
		"fix the cause and re-run `k4t upgrade`: it carries on from this node (the nodes already upgraded serve meanwhile)",
		"upgrade stopped at %s, which is %s: %w", h.Name, left, err)
}

// planNodeUpgrade lists one node's steps; none when it runs the target and
// no interrupted upgrade left it cordoned or out of HAProxy.
func planNodeUpgrade(ctx context.Context, hc *engine.HostCtx, o *UpgradeOptions) ([]*engine.Change, error) {
	r := hc.Run
	need, err := nodeNeedsUpgrade(ctx, hc)
	if err != nil || !need {
		return nil, err
	}
	target, err := targetVersion(r)
	if err != nil {
		return nil, err
	}
	name := hc.Name()
	master := hc.Host.HasRole(v1alpha1.RoleMaster)
	cs := engine.NewChanges(hc, upgradePhase)
	step := func(desc string, apply func(ctx context.Context) error) { cs.Add(stepChange(desc, apply)) }
	if master && len(r.Cluster.SLBs()) > 0 {
		cs.Add(haproxyOutStep(r, upgradePhase, hc.Host))
	}
	drainOpts := o.Drain
	step(fmt.Sprintf("cordon and drain %s (timeout %s)", name, drainOpts.Timeout), func(ctx context.Context) error {
		if err := r.Journal.Record(name, upgradePhase, state.Intent, cordonKey(name), "cordoned for the upgrade"); err != nil {
			return err
		}
		c, err := kubeClient(ctx, r)
		if err != nil {
			return err
		}
		return runDrain(ctx, r, c, name, drainOpts)
	})
	kubeadm, err := artifactFile(ctx, r, "kubeadm")
	if err != nil {
		return nil, err
	}
	if _, err := cs.File(ctx, kubeadm, engine.FileOpts{Binary: true}); err != nil {
		return nil, err
	}
	cfg, err := templates.KubeadmUpgrade(templates.KubeadmUpgradeInput{
		KubernetesVersion: r.Cluster.Spec.Kubernetes.Version, IgnorePreflightErrors: r.Cluster.Spec.Preflight.IgnoreErrors})
	if err != nil {
		return nil, err
	}
	if _, err := cs.File(ctx, transport.File{Path: kubeadmUpgradeConfigPath, Mode: 0o600, Content: cfg}, engine.FileOpts{}); err != nil {
		return nil, err
	}
	cpAt := true
	if master {
		if cpAt, err = upgradeApplied(ctx, hc, target); err != nil {
			return nil, err
		}
	}
	n, err := getNode(ctx, r, name)
	if err != nil {
		return nil, err
	}
	kubeletBehind := !kubeletAt(n, target)
	switch {
	case master && !cpAt && name == r.Cluster.FirstMaster().Name:
		dns, err := dnsTagChange(ctx, hc)
		if err != nil {
			return nil, err
		}
		if dns != nil {
			cs.Add(dns)
		}
		kubeadmStep(cs, "kubeadm upgrade apply "+vs(target), "kubeadm upgrade apply --yes --config "+kubeadmUpgradeConfigPath+" && touch "+upgradeAppliedMarker(target))
	case !cpAt || kubeletBehind:
		// On a worker it brings the kubelet's config to the target's.
		kubeadmStep(cs, "kubeadm upgrade node", "kubeadm upgrade node --config "+kubeadmUpgradeConfigPath)
	}
	for _, b := range []string{"kubelet", "kubectl"} {
		f, err := artifactFile(ctx, r, b)
		if err != nil {
			return nil, err
		}
		if _, err := cs.File(ctx, f, engine.FileOpts{Binary: true}); err != nil {
			return nil, err
		}
	}
	if kubeletBehind {
		restart := engine.RestartChange(hc, "kubelet")
		restart.Desc = "restart kubelet (" + n.Status.NodeInfo.KubeletVersion + " → " + vs(target) + ")"
		cs.Add(restart)
	}
	timeout := o.readyTimeout()
	if master {
		step(fmt.Sprintf("wait for %s's /readyz (10s in a row) and etcd health", name), func(ctx context.Context) error {
			if err := waitAPIServerReadyFor(ctx, hc, "https://"+hc.Host.InternalAddress+":6443", timeout, 5); err != nil {
				return err
			}
			return WaitEtcdHealthy(ctx, r, timeout)
		})
	}
	step(fmt.Sprintf("wait for node %s Ready with kubelet %s", name, vs(target)), func(ctx context.Context) error {
		return waitNodeAt(ctx, r, name, target, timeout)
	})
	step("uncordon "+name, func(ctx context.Context) error {
		if err := uncordon(ctx, r, name); err != nil {
			return err
		}
		return r.Journal.Record(name, upgradePhase, state.Done, cordonKey(name), "uncordoned")
	})
	if master && len(r.Cluster.SLBs()) > 0 {
		cs.Add(haproxyBackStep(r, upgradePhase, name, timeout))
	}
	return cs.List, nil
}

func cordonKey(node string) string { return "cordon:" + node }

// kubeadmStep adds a kubeadm upgrade command to cs. A kubeadm that a killed
// run left running is stopped first, so two never work on the node at once.
func kubeadmStep(cs *engine.Changes, desc, cmd string) {
	cs.Add(&engine.Change{Kind: engine.KindCommand, Key: "cmd:" + desc, Desc: desc,
		Apply: func(ctx context.Context, h transport.Host) error {
			_, err := h.Run(ctx, transport.Cmd{Command: "pkill -x kubeadm && sleep 2; " + cmd, Timeout: kubeadmTimeout})
			return err
		}})
}

// waitNodeAt waits until node is Ready and its kubelet reports v.
func waitNodeAt(ctx context.Context, r *engine.Run, node string, v *version.Version, timeout time.Duration) error {
	last := ""
	err := engine.Poll(ctx, timeout, 2*time.Second, func(ctx context.Context) (bool, error) {
		n, err := getNode(ctx, r, node)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("Ready=%v, kubelet %s", nodeReady(n), n.Status.NodeInfo.KubeletVersion)
		return nodeReady(n) && kubeletAt(n, v), nil
	})
	if errors.Is(err, engine.ErrTimeout) {
		return engine.Errorf(node, upgradePhase, "check 'journalctl -u kubelet' on "+node,
			"node %s not Ready with kubelet %s after %s (last: %s)", node, vs(v), timeout, last)
	}
	return err
}
