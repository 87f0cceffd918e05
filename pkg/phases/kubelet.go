package phases

import (
	"context"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Kubelet installs kubeadm, kubelet and kubectl and the kubelet unit with
// kubeadm's drop-in. kubeadm init/join starts kubelet; this phase only
// enables it (and restarts it when a running kubelet's binary or unit
// changed).
type Kubelet struct {
	// AfterUpgrade: the phase runs after `k4t upgrade`'s roll, which already
	// put the new binaries on each node in turn (and, in a dry run, plans
	// them), so it neither refuses a version change nor plans it again.
	AfterUpgrade bool
}

func (*Kubelet) Name() string                         { return "kubelet" }
func (*Kubelet) Title() string                        { return "Kubelet: kubeadm, kubelet, kubectl and the kubelet unit" }
func (*Kubelet) Hosts(r *engine.Run) []*v1alpha1.Host { return kubeNodes(r) }

func (p *Kubelet) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	if p.AfterUpgrade && hc.Run.DryRun {
		return nil, nil
	}
	cs := engine.NewChanges(hc, p.Name())
	// The binaries and the unit files, planned with one round trip.
	var files []engine.PlannedFile
	for _, name := range []string{"kubeadm", "kubelet", "kubectl"} {
		f, err := artifactFile(ctx, hc.Run, name)
		if err != nil {
			return nil, err
		}
		files = append(files, engine.PlannedFile{File: f, Opts: engine.FileOpts{Binary: true}})
	}
	unit, err := templates.KubeletUnit(templates.KubeletInput{})
	if err != nil {
		return nil, err
	}
	dropIn, err := templates.KubeletDropIn(templates.KubeletInput{})
	if err != nil {
		return nil, err
	}
	files = append(files,
		engine.PlannedFile{File: transport.File{Path: templates.KubeletUnitPath, Mode: 0o644, Content: unit}},
		engine.PlannedFile{File: transport.File{Path: templates.KubeletDropInPath, Mode: 0o644, Content: dropIn}})
	changedFiles, err := cs.Files(ctx, files...)
	if err != nil {
		return nil, err
	}
	newKubelet := changedFiles[1] // kubelet's binary
	changed := len(cs.List) > 0
	st, err := engine.GetUnitState(ctx, hc.Conn, "kubelet")
	if err != nil {
		return nil, err
	}
	if newKubelet && st.Active && !p.AfterUpgrade {
		if err := sameKubeletVersion(ctx, hc); err != nil {
			return nil, err
		}
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

// sameKubeletVersion refuses to swap a running kubelet for another version:
// that is an upgrade, which drains the node first and goes one minor at a
// time (`k4t upgrade`), not something apply does to every node at once.
func sameKubeletVersion(ctx context.Context, hc *engine.HostCtx) error {
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "kubelet --version", Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return nil // no usable kubelet there: installing one is apply's job
	}
	running := strings.TrimPrefix(strings.TrimSpace(string(res.Stdout)), "Kubernetes ")
	if want := hc.Run.Cluster.Spec.Kubernetes.Version; running != want {
		return engine.Errorf(hc.Name(), "kubelet", "run `k4t upgrade -f` with this inventory to upgrade node by node (or set spec.kubernetes.version back to "+running+")",
			"%s runs kubelet %s and the inventory says %s: apply does not change Kubernetes versions", hc.Name(), running, want)
	}
	return nil
}
