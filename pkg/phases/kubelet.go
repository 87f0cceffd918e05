package phases

import (
	"context"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Kubelet installs kubeadm, kubelet and kubectl and the kubelet unit with
// kubeadm's drop-in. kubeadm init/join starts kubelet; this phase only
// enables it (and restarts it when a running kubelet's binary or unit
// changed).
type Kubelet struct{}

func (*Kubelet) Name() string                         { return "kubelet" }
func (*Kubelet) Title() string                        { return "Kubelet: kubeadm, kubelet, kubectl and the kubelet unit" }
func (*Kubelet) Hosts(r *engine.Run) []*v1alpha1.Host { return kubeNodes(r) }

func (p *Kubelet) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	cs := engine.NewChanges(hc, p.Name())
	for _, name := range []string{"kubeadm", "kubelet", "kubectl"} {
		f, err := artifactFile(ctx, hc.Run, name)
		if err != nil {
			return nil, err
		}
		if _, err := cs.File(ctx, f, engine.FileOpts{Binary: true}); err != nil {
			return nil, err
		}
	}
	unit, err := templates.KubeletUnit(templates.KubeletInput{})
	if err != nil {
		return nil, err
	}
	dropIn, err := templates.KubeletDropIn(templates.KubeletInput{})
	if err != nil {
		return nil, err
	}
	if _, err := cs.File(ctx, transport.File{Path: templates.KubeletUnitPath, Mode: 0o644, Content: unit}, engine.FileOpts{}); err != nil {
		return nil, err
	}
	if _, err := cs.File(ctx, transport.File{Path: templates.KubeletDropInPath, Mode: 0o644, Content: dropIn}, engine.FileOpts{}); err != nil {
		return nil, err
	}
	changed := len(cs.List) > 0
	st, err := engine.GetUnitState(ctx, hc.Conn, "kubelet")
	if err != nil {
		return nil, err
	}
	if changed {
		cs.Add(engine.CommandChange(hc, p.Name(), "systemctl daemon-reload", "systemctl daemon-reload"))
	}
	if !st.Enabled {
		c := engine.CommandChange(hc, p.Name(), "enable kubelet", "systemctl enable kubelet && mkdir -p /etc/kubernetes/manifests")
		c.Kind, c.Key = engine.KindUnit, "enable:kubelet"
		cs.Add(c)
	}
	if st.Active && changed {
		cs.Add(engine.RestartChange(hc, "kubelet"))
	}
	return cs.List, nil
}
