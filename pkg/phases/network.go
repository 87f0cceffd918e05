package phases

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Network gives pods a network across nodes with the plugins k4t ships:
// per node a bridge CNI config on the node's podCIDR (allocated by
// kube-controller-manager) and routes to every other node's podCIDR via
// that node, kept by the k4t-pod-routes unit. Its check waits for every
// node to be Ready and every kube-system pod to run.
//
// spec.network.plugin "manifest" instead applies a CNI manifest (calico,
// flannel, cilium, …) with kubectl from the first master.
type Network struct {
	once  sync.Once
	nodes map[string]nodeNet
	err   error
}

type nodeNet struct{ podCIDR, ip string }

func (*Network) Name() string                         { return "network" }
func (*Network) Title() string                        { return "Network: pod networking across nodes" }
func (*Network) Hosts(r *engine.Run) []*v1alpha1.Host { return kubeNodes(r) }

// nodeNets reads every node's podCIDR and internal IP from the API, once.
// kube-controller-manager assigns a podCIDR just after a node registers, so
// on apply it waits (up to podCIDRWait) until every node has one.
func (p *Network) nodeNets(ctx context.Context, r *engine.Run) (map[string]nodeNet, error) {
	p.once.Do(func() {
		// Not having every podCIDR in time is no error here: the phase's
		// plan and Check say which node lacks one.
		err := engine.Poll(ctx, podCIDRWait, 2*time.Second, func(ctx context.Context) (bool, error) {
			p.nodes, p.err = readNodeNets(ctx, r)
			return p.err != nil || r.DryRun || allHavePodCIDR(p.nodes, kubeNodes(r)), nil
		})
		if err != nil && !errors.Is(err, engine.ErrTimeout) {
			p.err = err
		}
	})
	return p.nodes, p.err
}

const podCIDRWait = 90 * time.Second

func readNodeNets(ctx context.Context, r *engine.Run) (map[string]nodeNet, error) {
	nodes, err := listNodes(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("reading nodes' podCIDRs: %w", err)
	}
	out := map[string]nodeNet{}
	for _, n := range nodes {
		nn := nodeNet{podCIDR: n.Spec.PodCIDR}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nn.ip = a.Address
			}
		}
		if nn.podCIDR != "" && nn.ip != "" {
			out[n.Name] = nn
		}
	}
	return out, nil
}

func allHavePodCIDR(nodes map[string]nodeNet, hosts []*v1alpha1.Host) bool {
	for _, h := range hosts {
		if nodes[h.Name].podCIDR == "" {
			return false
		}
	}
	return true
}

func (p *Network) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	if r.Cluster.Spec.Network.Plugin == "manifest" {
		return p.planManifest(ctx, hc)
	}
	nodes, err := p.nodeNets(ctx, r)
	if err != nil {
		if r.DryRun {
			// Before the control plane exists there is nothing to read.
			return []*engine.Change{{Host: hc.Name(), Kind: engine.KindFile, Desc: "bridge CNI config and pod routes (once the node has a podCIDR)"}}, nil
		}
		return nil, err
	}
	self, ok := nodes[hc.Name()]
	if !ok || self.podCIDR == "" {
		return nil, engine.Errorf(hc.Name(), p.Name(), "check that kube-controller-manager runs with --allocate-node-cidrs (kubeadm sets it from spec.kubernetes.podCIDR)",
			"node %s has no podCIDR after %s", hc.Name(), podCIDRWait)
	}
	var out []*engine.Change
	cni, err := templates.BridgeCNI(templates.BridgeInput{PodCIDR: self.podCIDR})
	if err != nil {
		return nil, err
	}
	if c, err := engine.FileChange(ctx, hc, p.Name(), transport.File{Path: templates.BridgeCNIPath, Mode: 0o644, Content: cni}, engine.FileOpts{}); err != nil {
		return nil, err
	} else if c != nil {
		out = append(out, c)
	}
	var routes []templates.Route
	for name, n := range nodes {
		if name != hc.Name() && n.podCIDR != "" {
			routes = append(routes, templates.Route{Destination: n.podCIDR, Gateway: n.ip})
		}
	}
	rt, err := templates.PodRoutes(routes)
	if err != nil {
		return nil, err
	}
	unit, err := templates.PodRoutesService()
	if err != nil {
		return nil, err
	}
	rc, err := engine.FileChange(ctx, hc, p.Name(), transport.File{Path: templates.PodRoutesPath, Mode: 0o644, Content: rt}, engine.FileOpts{})
	if err != nil {
		return nil, err
	}
	uc, err := engine.FileChange(ctx, hc, p.Name(), transport.File{Path: templates.PodRoutesUnit, Mode: 0o644, Content: unit}, engine.FileOpts{})
	if err != nil {
		return nil, err
	}
	for _, c := range []*engine.Change{rc, uc} {
		if c != nil {
			out = append(out, c)
		}
	}
	units, err := engine.UnitChanges(ctx, hc, engine.Unit{Name: "k4t-pod-routes", UnitFileChanged: uc != nil, ConfigChanged: rc != nil})
	if err != nil {
		return nil, err
	}
	return append(out, units...), nil
}

// planManifest applies a CNI manifest once, from the first master.
func (p *Network) planManifest(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	if hc.Name() != r.Cluster.FirstMaster().Name {
		return nil, nil
	}
	m, err := readLocal(r.Cluster.Spec.Network.Manifest)
	if err != nil {
		return nil, fmt.Errorf("spec.network.manifest: %w", err)
	}
	const remote = "/etc/kubernetes/k4t/cni.yaml"
	c, err := engine.FileChange(ctx, hc, p.Name(), transport.File{Path: remote, Mode: 0o644, Content: m}, engine.FileOpts{})
	if err != nil || c == nil {
		return nil, err
	}
	return []*engine.Change{c, engine.CommandChange(hc, p.Name(), "kubectl apply -f "+remote, "kubectl --kubeconfig "+adminConf+" apply -f "+remote)}, nil
}

// Check waits until every node is Ready and every kube-system pod runs.
func (p *Network) Check(ctx context.Context, r *engine.Run) error {
	want := len(kubeNodes(r))
	if err := WaitNodesReady(ctx, r, want, 5*time.Minute); err != nil {
		return err
	}
	r.Events.Infof(p.Name(), "", "%d node(s) Ready, every kube-system pod Running", want)
	return nil
}
