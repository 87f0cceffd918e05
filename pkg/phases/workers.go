package phases

import (
	"context"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// Workers joins every worker through the control plane endpoint (the VIP),
// all in parallel.
type Workers struct{}

func (*Workers) Name() string                         { return "workers" }
func (*Workers) Title() string                        { return "Workers: kubeadm join through the VIP" }
func (*Workers) ShouldRun(r *engine.Run) bool         { return len(r.Cluster.Workers()) > 0 }
func (*Workers) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.Workers() }

func (p *Workers) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	cfg, err := joinConfig(hc.Run, hc.Host, false)
	if err != nil {
		return nil, err
	}
	var out []*engine.Change
	c, err := engine.FileChange(ctx, hc, p.Name(), transport.File{Path: kubeadmConfigPath, Mode: 0o600, Content: cfg}, engine.FileOpts{Secret: true})
	if err != nil {
		return nil, err
	}
	if c != nil {
		out = append(out, c)
	}
	kc, err := kubeadmChange(ctx, hc, p.Name(), "kubeadm join", joinDone, "kubeadm join --config "+kubeadmConfigPath)
	if err != nil {
		return nil, err
	}
	return append(out, kc...), nil
}

// Apply makes sure the join token is valid, then joins in parallel.
func (p *Workers) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	if err := ensureToken(ctx, r); err != nil {
		return err
	}
	return engine.ForEachHost(ctx, r, plans, func(ctx context.Context, pl *engine.HostPlan) error {
		if len(pl.Changes) == 0 {
			return nil
		}
		return engine.ApplyChanges(ctx, r, pl)
	})
}
