package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// `k4t reset` takes the cluster down tier by tier (pkg/action's Reset):
// workers, masters, etcd, the load balancers, then what k4t changed in each
// host's OS. Each tier's hosts run their share of the rendered reset script
// (templates.NodeReset); a host where that share finds nothing left is not
// touched, so a reset killed half-way is finished by running it again.

const resetTimeout = 5 * time.Minute

// resetTier is one tier's share of the reset.
type resetTier struct {
	name, title string
	desc        string // of the change on one host
	hosts       func(r *engine.Run) []*v1alpha1.Host
	// left is a read-only shell test that succeeds when something of this
	// tier is still on the host.
	left  string
	input func(r *engine.Run, h *v1alpha1.Host) templates.NodeResetInput
}

func (t *resetTier) Name() string                         { return t.name }
func (t *resetTier) Title() string                        { return t.title }
func (t *resetTier) Hosts(r *engine.Run) []*v1alpha1.Host { return t.hosts(r) }
func (t *resetTier) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: t.left + " && echo left || true", ReadOnly: true})
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(res.Stdout)) != "left" {
		return nil, nil
	}
	in := t.input(hc.Run, hc.Host)
	in.Host = hc.Name()
	script, err := templates.NodeReset(in)
	if err != nil {
		return nil, err
	}
	return []*engine.Change{{Kind: engine.KindCommand, Key: "reset:" + t.name, Desc: t.desc,
		Apply: func(ctx context.Context, h transport.Host) error {
			_, err := h.Run(ctx, transport.Cmd{Command: "sh -s", Stdin: script, Timeout: resetTimeout})
			return err
		}}}, nil
}

// exists is a shell test: any of paths exists.
func exists(paths ...string) string {
	var t []string
	for _, p := range paths {
		t = append(t, "-e "+p)
	}
	return "[ " + strings.Join(t, " -o ") + " ]"
}

var kubeLeft = exists("/etc/kubernetes", "/var/lib/kubelet", templates.KubeletUnitPath, containerdUnitPath, "/var/lib/k4t", templates.PodRoutesUnit) +
	` || [ -n "$(ls -A /var/lib/containerd 2>/dev/null)" ]`

// ResetWorkers resets the workers: kubeadm's node, kubelet, containerd, the pod network.
func ResetWorkers() engine.Phase {
	return &resetTier{name: "reset-workers", title: "Workers: kubeadm reset, kubelet and containerd stopped and removed, pod network cleaned",
		desc:  "kubeadm reset; remove kubelet, containerd, their data and the pod network",
		hosts: workersOnly,
		left:  kubeLeft,
		input: func(*engine.Run, *v1alpha1.Host) templates.NodeResetInput {
			return templates.NodeResetInput{Kube: true}
		}}
}

// ResetMasters resets the masters' control plane and kubelet (etcd follows).
func ResetMasters() engine.Phase { return masterTier() }

func masterTier() *resetTier {
	return &resetTier{name: "reset-masters", title: "Masters: kubeadm reset, kubelet and containerd stopped and removed, pod network cleaned",
		desc:  "kubeadm reset; remove kubelet, containerd, their data and the pod network",
		hosts: func(r *engine.Run) []*v1alpha1.Host { return r.Cluster.Masters() },
		left:  kubeLeft,
		input: func(*engine.Run, *v1alpha1.Host) templates.NodeResetInput {
			return templates.NodeResetInput{Kube: true}
		}}
}

// ResetEtcd stops etcd on every member and removes it with its data.
func ResetEtcd() engine.Phase { return etcdTier() }

func etcdTier() *resetTier {
	return &resetTier{name: "reset-etcd", title: "etcd: stopped and removed on every member, data dir included",
		desc:  "stop etcd; remove its unit, configuration, certificates and data dir",
		hosts: func(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() },
		left:  exists(etcdUnitPath, templates.DefaultEtcdData, "/etc/etcd"),
		input: func(*engine.Run, *v1alpha1.Host) templates.NodeResetInput {
			return templates.NodeResetInput{Etcd: true}
		}}
}

// ResetSLB stops keepalived (the VIP is released) and HAProxy on both load
// balancers, and removes k4t's configuration of them.
func ResetSLB() engine.Phase {
	return &resetTier{name: "reset-slb", title: "Load balancers: keepalived (VIP released) and HAProxy stopped and disabled",
		desc:  "stop and disable keepalived and HAProxy; release the VIP; remove k4t's configuration of them",
		hosts: func(r *engine.Run) []*v1alpha1.Host { return r.Cluster.SLBs() },
		left:  exists(haproxyCfg, keepalivedCfg, templates.KeepalivedCheckPath),
		input: func(r *engine.Run, _ *v1alpha1.Host) templates.NodeResetInput {
			return templates.NodeResetInput{SLB: true, VIP: r.Cluster.Spec.ControlPlaneEndpoint.Address}
		}}
}

// ResetOS removes k4t's sysctls, its /etc/hosts block and the binaries it
// installed, on every host.
func ResetOS() engine.Phase { return osTier() }

func osTier() *resetTier {
	return &resetTier{name: "reset-os", title: "OS: k4t's sysctls, /etc/hosts block and binaries",
		desc:  "remove k4t's sysctls, its /etc/hosts block and the binaries it installed",
		hosts: engine.AllHosts,
		left:  exists(sysctlPath) + " || grep -qx '" + hostsBegin + "' /etc/hosts",
		input: func(r *engine.Run, _ *v1alpha1.Host) templates.NodeResetInput {
			return templates.NodeResetInput{OS: true, HostsBegin: hostsBegin, HostsEnd: hostsEnd, Binaries: installedBinaries(r)}
		}}
}

// installedBinaries lists where k4t installs its binaries, from the
// artifact manifest when the run has one.
func installedBinaries(r *engine.Run) []string {
	if r.Options.Artifacts == nil {
		return nil
	}
	var out []string
	for _, a := range r.Options.Artifacts.Manifest().Artifacts {
		if a.Kind == artifacts.KindBinary && a.Install != "" && !slices.Contains(out, a.Install) {
			out = append(out, a.Install)
		}
	}
	slices.Sort(out)
	return out
}

// ResetState archives the state dir: it moves to a timestamped sibling
// (CAs, journal and all), and a fresh one keeps only known_hosts, so a
// `k4t create cluster` on the same hosts starts anew and trusts their keys.
type ResetState struct{}

func (*ResetState) Name() string  { return "reset-state" }
func (*ResetState) Title() string { return "State dir: archived with a timestamp, not deleted" }
func (*ResetState) CheckInPlan()  {}
func (*ResetState) Check(_ context.Context, r *engine.Run) error {
	dir := r.State.Root
	if _, err := os.Stat(filepath.Join(r.State.PKI(), "ca.crt")); os.IsNotExist(err) {
		return nil // a state dir reset before: nothing of a cluster in it
	}
	archive := fmt.Sprintf("%s.reset-%s", dir, r.Now().UTC().Format("20060102T150405Z"))
	if r.DryRun {
		engine.EmitPlanned(r, &engine.Change{Phase: "reset-state", Kind: engine.KindFile, Desc: "move the state dir " + dir + " to " + archive})
		return nil
	}
	kh, err := os.ReadFile(r.State.KnownHosts())
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Rename(dir, archive); err != nil {
		return fmt.Errorf("archiving the state dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if kh != nil {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(r.State.KnownHosts())), kh, 0o600); err != nil {
			return err
		}
	}
	r.Events.Infof("reset-state", "", "state dir archived in %s (CAs, journal, backups); %s keeps only known_hosts", archive, dir)
	return nil
}
