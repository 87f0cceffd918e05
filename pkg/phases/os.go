package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// OS prepares every host: hostname, the cluster's block in /etc/hosts,
// k4t's sysctls (applied from k4t's own file only) and swap off.
type OS struct{}

func (*OS) Name() string                         { return "os" }
func (*OS) Title() string                        { return "OS: hostname, /etc/hosts, sysctls, swap" }
func (*OS) Hosts(r *engine.Run) []*v1alpha1.Host { return engine.AllHosts(r) }

const sysctlPath = templates.SysctlPath

func (o *OS) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	f, err := hc.Facts(ctx)
	if err != nil {
		return nil, err
	}
	cs := engine.NewChanges(hc, o.Name())
	name := hc.Name()
	if _, err := cs.File(ctx, transport.File{Path: "/etc/hostname", Mode: 0o644, Content: []byte(name + "\n")}, engine.FileOpts{}); err != nil {
		return nil, err
	}
	if f.Hostname != name {
		cs.Add(engine.CommandChange(hc, o.Name(), fmt.Sprintf("hostname %s (was %s)", name, f.Hostname), "hostname "+transport.ShellQuote(name)))
	}
	cur, err := hc.Conn.Get(ctx, "/etc/hosts")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	hosts := etcHosts(cur, hc.Run.Cluster)
	if _, err := cs.File(ctx, transport.File{Path: "/etc/hosts", Mode: 0o644, Content: hosts}, engine.FileOpts{}); err != nil {
		return nil, err
	}
	in := templates.SysctlInput{
		KubernetesNode: hc.Host.HasRole(v1alpha1.RoleMaster) || hc.Host.HasRole(v1alpha1.RoleWorker),
		NonLocalBind:   hc.Host.HasRole(v1alpha1.RoleSLB),
	}
	if in.KubernetesNode || in.NonLocalBind {
		sysctl, err := templates.SysctlConf(in)
		if err != nil {
			return nil, err
		}
		changed, err := cs.File(ctx, transport.File{Path: sysctlPath, Mode: 0o644, Content: sysctl}, engine.FileOpts{})
		if err != nil {
			return nil, err
		}
		// The file can be in place while the kernel is not (a run killed
		// between the two, a reboot without systemd-sysctl): the live values
		// decide too.
		if changed || sysctlDiffers(sysctl, f.Sysctl) {
			// Only k4t's own file: `sysctl --system` fails on read-only kernel.* keys in containers.
			cs.Add(engine.CommandChange(hc, o.Name(), "sysctl -p "+sysctlPath,
				"{ [ -d /proc/sys/net/bridge ] || modprobe br_netfilter || true; } && sysctl -q -p "+sysctlPath))
		}
	}
	if f.Swap > 0 && !hc.Host.HasRole(v1alpha1.RoleSLB) {
		cs.Add(engine.CommandChange(hc, o.Name(), "swapoff -a (and comment swap out of /etc/fstab)", `swapoff -a && sed -i.k4t-bak '/\sswap\s/s/^[^#]/#&/' /etc/fstab`))
	}
	return cs.List, nil
}

const (
	hostsBegin = "# BEGIN k4t managed block"
	hostsEnd   = "# END k4t managed block"
)

// etcHosts replaces (or appends) k4t's block in /etc/hosts, leaving every
// other line as it is.
func etcHosts(cur []byte, c *v1alpha1.Cluster) []byte {
	var b strings.Builder
	b.WriteString(hostsBegin + "\n")
	for _, h := range c.Spec.Hosts {
		fmt.Fprintf(&b, "%s %s\n", h.InternalAddress, h.Name)
	}
	b.WriteString(hostsEnd + "\n")
	text := string(cur)
	if i := strings.Index(text, hostsBegin); i >= 0 {
		if j := strings.Index(text[i:], hostsEnd); j >= 0 {
			rest := strings.TrimPrefix(text[i+j+len(hostsEnd):], "\n")
			return []byte(text[:i] + b.String() + rest)
		}
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return []byte(text + b.String())
}

// sysctlDiffers says whether a live value differs from one the file sets
// ("key = value" lines).
func sysctlDiffers(file []byte, live map[string]string) bool {
	for _, l := range strings.Split(string(file), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && live[strings.TrimSpace(k)] != strings.TrimSpace(v) {
			return true
		}
	}
	return false
}
