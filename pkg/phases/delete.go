package phases

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// `k4t delete node NODE` (pkg/action's DeleteNode): the node leaves the
// cluster, then its host is reset. Every step looks at the cluster first,
// so a delete killed half-way is finished by running it again.

const deletePhase = "delete"

// NodeDeletion is what the phases of `k4t delete node` share.
type NodeDeletion struct {
	Node string
	// Force removes a node whose host does not answer: its Node object and
	// etcd member go, its reset is skipped.
	Force bool
	Drain DrainOptions
	// ReadyTimeout bounds each health wait; zero means 3 minutes.
	ReadyTimeout time.Duration

	host        *v1alpha1.Host
	etcd        bool // the host is (or was, before this run) an etcd member
	unreachable bool
}

func (d *NodeDeletion) readyTimeout() time.Duration {
	if d.ReadyTimeout <= 0 {
		return 3 * time.Minute
	}
	return d.ReadyTimeout
}

func (d *NodeDeletion) master() bool { return d.host != nil && d.host.HasRole(v1alpha1.RoleMaster) }

// DeleteCheck refuses what must not be done, before anything changes: a node
// not in the inventory or not in the cluster, the first master (it holds
// the cluster's admin credentials k4t uses) or the last one, an etcd member
// whose removal would leave the others without a healthy quorum, and a host
// that does not answer unless --force.
type DeleteCheck struct{ D *NodeDeletion }

func (*DeleteCheck) Name() string { return "delete-check" }
func (*DeleteCheck) Title() string {
	return "Checks: the node is in the cluster, and the cluster keeps its quorum without it"
}
func (*DeleteCheck) CheckInPlan() {}
func (p *DeleteCheck) Check(ctx context.Context, r *engine.Run) error {
	d := p.D
	h := r.Cluster.Host(d.Node)
	if h == nil {
		return engine.Errorf(d.Node, deletePhase, "name a host of hosts.yaml", "%s is not in the inventory", d.Node)
	}
	removed, err := r.State.Removed()
	if err != nil {
		return err
	}
	for other := range removed {
		if other != d.Node && r.Cluster.Host(other) != nil {
			r.Cluster = r.Cluster.Without(other) // deleted before: no part of the cluster
		}
	}
	d.host, d.etcd = h, isMember(r.Cluster, h)
	if _, ok := removed[d.Node]; ok {
		r.Events.Warnf(deletePhase, d.Node, "%s was deleted before; finishing what that run left", d.Node)
	}
	if d.master() {
		if h.Name == r.Cluster.FirstMaster().Name {
			return engine.Errorf(d.Node, deletePhase, "deleting the first master is not supported yet: delete another master, or take the whole cluster down with `k4t reset`",
				"%s is the first master: it ran kubeadm init and holds the credentials k4t reaches the API with", d.Node)
		}
		if len(r.Cluster.Masters()) == 1 {
			return engine.Errorf(d.Node, deletePhase, "use `k4t reset` to take the whole cluster down", "%s is the only master", d.Node)
		}
	}
	if !h.HasRole(v1alpha1.RoleMaster) && !h.HasRole(v1alpha1.RoleWorker) && !d.etcd {
		return engine.Errorf(d.Node, deletePhase, "only masters, workers and etcd members can be deleted", "%s is neither a node nor an etcd member", d.Node)
	}
	if conn, err := r.Connect(ctx, h); err != nil {
		if !d.Force {
			return engine.Errorf(d.Node, deletePhase, "bring the host back, or pass --force to remove it from the cluster without resetting it",
				"%s does not answer: %v", d.Node, err)
		}
		d.unreachable = true
		r.Events.Warnf(deletePhase, d.Node, "%s does not answer (%v): it leaves the cluster, and its reset is skipped (--force)", d.Node, err)
	} else if _, err := conn.Run(ctx, transport.Cmd{Command: "true", ReadOnly: true}); err != nil && d.Force {
		d.unreachable = true
	}
	started, err := deleteStarted(r, d.Node)
	if err != nil {
		return err
	}
	if _, again := removed[d.Node]; !again && !started {
		if err := p.inCluster(ctx, r); err != nil {
			return err
		}
	}
	if d.etcd {
		if err := p.quorumWithout(ctx, r); err != nil {
			return err
		}
	}
	if r.DryRun || started {
		return nil
	}
	// From here a run killed at any step is recognised by the next, which
	// then finishes the delete even when the Node and member are gone.
	return r.Journal.Record(d.Node, deletePhase, state.Intent, deleteKey(d.Node), "deleting "+d.Node)
}

func deleteKey(node string) string { return "delete:" + node }

// deleteStarted: an earlier delete of node was interrupted before it
// recorded the node as deleted.
func deleteStarted(r *engine.Run, node string) (bool, error) {
	pending, err := state.PendingIntents(r.State.Journal())
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(pending, func(p state.Pending) bool { return p.Host == node && p.Key == deleteKey(node) }), nil
}

// inCluster refuses a host that hosts.yaml lists but the cluster does not
// know: no Node object and no etcd member (a delete that stopped after
// these went is recognised by the state dir's record instead).
func (p *DeleteCheck) inCluster(ctx context.Context, r *engine.Run) error {
	d := p.D
	if d.master() || d.host.HasRole(v1alpha1.RoleWorker) {
		client, err := kubeClient(ctx, r)
		if err != nil {
			return err
		}
		_, err = client.CoreV1().Nodes().Get(ctx, d.Node, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
	}
	if d.etcd {
		if others := etcdOthers(r, d.Node); len(others) > 0 {
			members, err := etcdMembers(ctx, r, others[0])
			if err != nil {
				return err
			}
			if slices.ContainsFunc(members, func(m etcdListed) bool { return slices.Contains(m.PeerURLs, etcdPeerURL(d.host)) }) {
				return nil
			}
		}
	}
	return engine.Errorf(d.Node, deletePhase, "check the name; `k4t apply` adds a host that hosts.yaml lists",
		"%s is not in the cluster: no Node object and no etcd member", d.Node)
}

// quorumWithout refuses unless every member left is healthy: the cluster
// without the node must have its quorum from the start.
func (p *DeleteCheck) quorumWithout(ctx context.Context, r *engine.Run) error {
	d := p.D
	left := etcdOthers(r, d.Node)
	if len(left) == 0 {
		return engine.Errorf(d.Node, deletePhase, "use `k4t reset` to take the whole cluster down", "%s is the only etcd member", d.Node)
	}
	from := left[0]
	members, err := etcdMembers(ctx, r, from)
	if err != nil {
		return engine.Errorf(from.Name, deletePhase, "check etcd with `k4t etcd backup --dry-run` or etcdctl on "+from.Name, "%v", err)
	}
	if !slices.ContainsFunc(members, func(m etcdListed) bool { return m.Name == d.Node || slices.Contains(m.PeerURLs, etcdPeerURL(d.host)) }) {
		return nil // removed already (a re-run)
	}
	healthy, err := etcdHealthyCount(ctx, r, from, left)
	if err != nil {
		return err
	}
	if healthy < len(left) {
		return engine.Errorf(d.Node, deletePhase, "bring the unhealthy members back first (k4t apply), then delete "+d.Node,
			"refusing to remove %s from etcd: only %d of the %d members left are healthy, and the cluster of %d would need %d of them for a quorum; every one must be healthy before a member goes",
			d.Node, healthy, len(left), len(left), len(left)/2+1)
	}
	return nil
}

// DeleteDrain takes a master out of HAProxy, then cordons and drains the node.
type DeleteDrain struct{ D *NodeDeletion }

func (*DeleteDrain) Name() string  { return "delete-drain" }
func (*DeleteDrain) Title() string { return "Out of HAProxy (a master), cordoned and drained" }
func (p *DeleteDrain) ShouldRun(r *engine.Run) bool {
	return p.D.host != nil && (p.D.master() || p.D.host.HasRole(v1alpha1.RoleWorker))
}
func (*DeleteDrain) CheckInPlan() {}
func (p *DeleteDrain) Check(ctx context.Context, r *engine.Run) error {
	d := p.D
	client, err := kubeClient(ctx, r)
	if err != nil {
		return err
	}
	n, err := client.CoreV1().Nodes().Get(ctx, d.Node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // deleted already (a re-run)
	}
	if err != nil {
		return err
	}
	if d.master() && len(r.Cluster.SLBs()) > 0 {
		if err := engine.ApplyOrPlan(ctx, r, nil, &engine.Change{Host: d.Node, Phase: deletePhase, Kind: engine.KindCommand, Key: "step:haproxy-out",
			Desc:  "take " + d.Node + " out of HAProxy on every slb",
			Apply: func(ctx context.Context, _ transport.Host) error { return HAProxyOut(ctx, r, deletePhase, d.host) }}); err != nil {
			return err
		}
	}
	o := d.Drain
	if d.unreachable || !nodeReady(n) {
		// Its kubelet cannot confirm pods gone: do not wait for it. Their
		// controllers start replacements at once; the Pod objects go with
		// the Node (pod garbage collection).
		o.gracePeriod, o.skipWaitAfter = 1, 5*time.Second
	}
	ch, err := DrainChange(ctx, r, d.Node, o)
	if err != nil {
		return err
	}
	ch.Phase = deletePhase
	return engine.ApplyOrPlan(ctx, r, nil, ch)
}

// DeleteFromCluster deletes the Node object and removes the etcd member.
type DeleteFromCluster struct{ D *NodeDeletion }

func (*DeleteFromCluster) Name() string  { return "delete-member" }
func (*DeleteFromCluster) Title() string { return "The Node object and the etcd member go" }
func (*DeleteFromCluster) CheckInPlan()  {}
func (p *DeleteFromCluster) Check(ctx context.Context, r *engine.Run) error {
	d := p.D
	if d.master() || d.host.HasRole(v1alpha1.RoleWorker) {
		client, err := kubeClient(ctx, r)
		if err != nil {
			return err
		}
		if _, err := client.CoreV1().Nodes().Get(ctx, d.Node, metav1.GetOptions{}); err == nil {
			if err := engine.ApplyOrPlan(ctx, r, nil, &engine.Change{Host: d.Node, Phase: deletePhase, Kind: engine.KindCommand, Key: "step:delete-node",
				Desc: "delete the Node object " + d.Node,
				Apply: func(ctx context.Context, _ transport.Host) error {
					err := client.CoreV1().Nodes().Delete(ctx, d.Node, metav1.DeleteOptions{})
					if apierrors.IsNotFound(err) {
						return nil
					}
					return err
				}}); err != nil {
				return err
			}
		} else if !apierrors.IsNotFound(err) {
			return err
		}
	}
	if !d.etcd {
		return nil
	}
	left := etcdOthers(r, d.Node)
	members, err := etcdMembers(ctx, r, left[0])
	if err != nil {
		return err
	}
	i := slices.IndexFunc(members, func(m etcdListed) bool { return m.Name == d.Node || slices.Contains(m.PeerURLs, etcdPeerURL(d.host)) })
	if i < 0 {
		return nil // removed already
	}
	conn, err := r.Connect(ctx, left[0])
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%x", members[i].ID)
	return engine.ApplyOrPlan(ctx, r, conn, &engine.Change{Host: left[0].Name, Phase: deletePhase, Kind: engine.KindCommand, Key: "step:member-remove",
		Desc: fmt.Sprintf("etcd member remove %s (%s); %d members stay", id, d.Node, len(left)),
		Apply: func(ctx context.Context, h transport.Host) error {
			if err := etcdReconfig(ctx, h, etcdctlCmd(left, "member remove "+id)); err != nil {
				return err
			}
			return waitEtcd(ctx, r, left[0], left, len(left), d.readyTimeout())
		}})
}

// DeleteForget records the node as deleted in the state dir, and from here
// on this run works with the cluster without it: the load balancers, the
// other masters' etcd servers and kubeadm's configuration follow.
type DeleteForget struct{ D *NodeDeletion }

func (*DeleteForget) Name() string  { return "delete-record" }
func (*DeleteForget) Title() string { return "The state dir records the node as deleted" }
func (*DeleteForget) CheckInPlan()  {}
func (p *DeleteForget) Check(_ context.Context, r *engine.Run) error {
	d := p.D
	r.Cluster = r.Cluster.Without(d.Node)
	if r.DryRun {
		engine.EmitPlanned(r, &engine.Change{Host: d.Node, Phase: deletePhase, Kind: engine.KindFile,
			Desc: "record " + d.Node + " as deleted in " + r.State.Path("removed-hosts.txt") + " (remove it from hosts.yaml)"})
		return nil
	}
	if err := r.State.SetRemoved(d.Node, r.Now(), true); err != nil {
		return err
	}
	// Out of HAProxy for good: its backend goes with the next phase.
	if err := r.Journal.Record(d.Node, deletePhase, state.Done, lbOutKey(d.Node), "deleted from the cluster"); err != nil {
		return err
	}
	if err := r.Journal.Record(d.Node, deletePhase, state.Done, deleteKey(d.Node), "recorded as deleted"); err != nil {
		return err
	}
	r.Events.Infof(deletePhase, d.Node, "%s is no longer part of the cluster: remove it from hosts.yaml (until then plan and apply warn, and apply would add it back)", d.Node)
	return nil
}

// DeleteEtcdServers gives the other masters' kube-apiservers the etcd
// members left, from kubeadm's ClusterConfiguration (EtcdEndpoints set it):
// `kubeadm upgrade node phase control-plane` on each master that still
// names the removed member, one at a time, out of HAProxy until its /readyz
// answers.
type DeleteEtcdServers struct{ D *NodeDeletion }

func (*DeleteEtcdServers) Name() string { return "delete-etcd-servers" }
func (*DeleteEtcdServers) Title() string {
	return "The other masters' kube-apiserver --etcd-servers, one master at a time"
}
func (p *DeleteEtcdServers) ShouldRun(r *engine.Run) bool {
	return p.D.etcd
}
func (*DeleteEtcdServers) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.Masters() }
func (p *DeleteEtcdServers) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	d, r, name := p.D, hc.Run, hc.Name()
	gone := etcdClientURL(d.host)
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "grep -c -F " + transport.ShellQuote(gone) + " " + manifestsDir + "/kube-apiserver.yaml || true", ReadOnly: true})
	if err != nil {
		return nil, err
	}
	var out []*engine.Change
	step := func(desc string, apply func(ctx context.Context) error) { out = append(out, stepChange(desc, apply)) }
	if strings.TrimSpace(string(res.Stdout)) == "0" {
		return nil, nil
	}
	cfg, err := templates.KubeadmUpgrade(templates.KubeadmUpgradeInput{
		KubernetesVersion: r.Cluster.Spec.Kubernetes.Version, IgnorePreflightErrors: r.Cluster.Spec.Preflight.IgnoreErrors})
	if err != nil {
		return nil, err
	}
	if len(r.Cluster.SLBs()) > 0 {
		out = append(out, haproxyOutStep(r, deletePhase, hc.Host))
	}
	step("kubeadm upgrade node phase control-plane: kube-apiserver without "+gone, func(ctx context.Context) error {
		if _, err := hc.Conn.Put(ctx, transport.File{Path: kubeadmUpgradeConfigPath, Mode: 0o600, Content: cfg}); err != nil {
			return err
		}
		_, err := hc.Conn.Run(ctx, transport.Cmd{Command: "kubeadm upgrade node phase control-plane --config " + kubeadmUpgradeConfigPath, Timeout: kubeadmTimeout})
		return err
	})
	// kubeadm has waited for the new kube-apiserver's pod; its /readyz and
	// HAProxy's own checks say it serves.
	step("wait for "+name+"'s /readyz", func(ctx context.Context) error {
		return WaitAPIServerReady(ctx, hc, "https://"+hc.Host.InternalAddress+":6443", d.readyTimeout())
	})
	if len(r.Cluster.SLBs()) > 0 {
		out = append(out, haproxyBackStep(r, deletePhase, name, d.readyTimeout()))
	}
	return out, nil
}

// Apply goes one master at a time; the first failure stops it.
func (p *DeleteEtcdServers) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	for _, pl := range plans {
		if len(pl.Changes) == 0 {
			continue
		}
		if err := engine.ApplyChanges(ctx, r, pl); err != nil {
			return engine.Errorf(pl.Name(), deletePhase, "fix the cause and run `k4t delete node "+p.D.Node+"` again: it carries on from here",
				"updating %s's etcd servers: %w", pl.Name(), err)
		}
	}
	return nil
}

// DeleteReset resets the deleted node's host, unless it does not answer.
type DeleteReset struct{ D *NodeDeletion }

func (*DeleteReset) Name() string { return "delete-reset" }
func (*DeleteReset) Title() string {
	return "The host reset: kubeadm reset, kubelet, containerd, etcd and k4t's files removed"
}
func (p *DeleteReset) ShouldRun(*engine.Run) bool {
	return p.D.host != nil && !p.D.unreachable
}
func (p *DeleteReset) Hosts(*engine.Run) []*v1alpha1.Host { return []*v1alpha1.Host{p.D.host} }
func (p *DeleteReset) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	var out []*engine.Change
	var tiers []*resetTier
	if hc.Host.HasRole(v1alpha1.RoleMaster) || hc.Host.HasRole(v1alpha1.RoleWorker) {
		tiers = append(tiers, masterTier())
	}
	if p.D.etcd {
		tiers = append(tiers, etcdTier())
	}
	for _, t := range append(tiers, osTier()) {
		cs, err := t.Plan(ctx, hc)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}
