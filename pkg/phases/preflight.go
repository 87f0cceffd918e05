package phases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/hostos"
)

// Preflight reaches every host and checks all of them before any host is
// changed. It plans no changes; every failed check of every host is reported
// at once, each with its host and fix.
type Preflight struct {
	// Restore: this run is `k4t etcd restore`, which finishes a restore
	// that stopped half-way; every other command refuses to run then.
	Restore bool
	// Install: this run sets hosts up (create, apply), so it also checks
	// what only a new service needs, such as a host firewall's open ports;
	// reset, upgrade, backups and restores of a running cluster do not.
	Install bool

	mu       sync.Mutex
	problems []error
	clocks   map[string]clock
}

// clock is a host's clock minus the bastion's, ± half the round trip.
type clock struct{ offset, uncertainty time.Duration }

func (*Preflight) CheckInPlan() {}
func (*Preflight) Name() string { return "preflight" }
func (*Preflight) Title() string {
	return "Preflight: reach every host and check it before changing any"
}

func (p *Preflight) Hosts(r *engine.Run) []*v1alpha1.Host { return engine.AllHosts(r) }

// Minimum sizes per role (MemTotal, kB; free disk on /var, kB).
var minSizes = map[v1alpha1.Role][2]int64{
	v1alpha1.RoleSLB:    {256 << 10, 1 << 20},
	v1alpha1.RoleEtcd:   {512 << 10, 2 << 20},
	v1alpha1.RoleMaster: {1700 << 10, 4 << 20},
	v1alpha1.RoleWorker: {900 << 10, 4 << 20},
}

// portsOf lists the ports a role needs free, with the unit that, when
// active, is the legitimate owner on a re-run.
func portsOf(r *engine.Run, h *v1alpha1.Host) map[int]string {
	ports := map[int]string{}
	if h.HasRole(v1alpha1.RoleSLB) {
		ports[r.Cluster.Spec.ControlPlaneEndpoint.Port] = "haproxy"
	}
	etcdHost := h.HasRole(v1alpha1.RoleEtcd) || (h.HasRole(v1alpha1.RoleMaster) && r.Cluster.Spec.Etcd.Topology != v1alpha1.EtcdExternal)
	if etcdHost {
		ports[2379], ports[2380] = "etcd", "etcd"
	}
	if h.HasRole(v1alpha1.RoleMaster) {
		ports[6443], ports[10257], ports[10259] = "kubelet", "kubelet", "kubelet"
	}
	if h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker) {
		ports[10250] = "kubelet"
	}
	return ports
}

func (p *Preflight) skip(r *engine.Run, check string) bool {
	for _, s := range r.Cluster.Spec.Preflight.Skip {
		if s == check {
			return true
		}
	}
	return false
}

func (p *Preflight) fail(host, check, hint, format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, &engine.Error{Host: host, Phase: "preflight", Hint: hint,
		Err: fmt.Errorf("[%s] %s", check, fmt.Sprintf(format, a...))})
}

// Plan runs the read-only checks of one host.
func (p *Preflight) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	start := time.Now()
	f, err := hc.Facts(ctx)
	if err != nil {
		return nil, err
	}
	// The host's clock read at the midpoint of the facts command.
	offset := f.Time.Sub(start.Add(f.RTT / 2))
	p.mu.Lock()
	if p.clocks == nil {
		p.clocks = map[string]clock{}
	}
	p.clocks[hc.Name()] = clock{offset, f.RTT / 2}
	p.mu.Unlock()
	h, name := hc.Host, hc.Name()
	if !p.skip(r, "os") {
		hos, err := hostos.Detect(hostos.Release{ID: f.OS, IDLike: f.OSLike, VersionID: f.OSVersion, PrettyName: f.OSName})
		var ue *hostos.UnsupportedError
		switch {
		case errors.As(err, &ue) && r.Options.ForceOS && !ue.Final:
			r.Events.Warnf(p.Name(), name, "%s; going on as on a %s host (--force-os)", ue.Reason, hos.Family)
		case errors.As(err, &ue):
			p.fail(name, "os", ue.Hint, "%s", ue.Reason)
		}
		if f.Init != "systemd" {
			hint := "k4t manages services with systemd; use a systemd-based distribution"
			if hos.Init == "openrc" {
				hint = "k4t's OpenRC service layer is not built yet; use a systemd-based host (" + strings.Join(hostos.Supported("systemd"), "; ") + ")"
			}
			p.fail(name, "os", hint, "init system is %q, not systemd", f.Init)
		}
		if f.Arch != "x86_64" && f.Arch != "aarch64" {
			p.fail(name, "os", "use an amd64 or arm64 host", "unsupported architecture %q", f.Arch)
		}
	}
	if !p.skip(r, "commands") && len(f.Missing) > 0 {
		p.fail(name, "commands", "install them with the host's package manager (e.g. apt-get install -y iproute2 iptables coreutils tar)", "required commands missing: %s", strings.Join(f.Missing, ", "))
	}
	if !p.skip(r, "resources") {
		for _, role := range h.Roles {
			min, ok := minSizes[role]
			if !ok {
				continue
			}
			if f.MemTotalKB <= 0 {
				p.fail(name, "resources", "check that /proc/meminfo is readable there, or skip the check with preflight.skip: [resources]", "could not read the host's memory (MemTotal)")
				break
			}
			if f.MemTotalKB < min[0] {
				p.fail(name, "resources", "give the host more memory or skip the check with preflight.skip: [resources]", "%d MiB memory, a %s needs at least %d MiB", f.MemTotalKB>>10, role, min[0]>>10)
			}
			if f.DiskFreeKB < min[1] {
				p.fail(name, "resources", "free space under /var", "%d MiB free on /var, a %s needs at least %d MiB", f.DiskFreeKB>>10, role, min[1]>>10)
			}
		}
	}
	if !p.skip(r, "ports") {
		ports := portsOf(r, h)
		var busy []string
		for port, owner := range ports {
			if f.Ports[port] && !f.Active[owner] {
				busy = append(busy, fmt.Sprint(port))
			}
		}
		sort.Strings(busy)
		if len(busy) > 0 {
			p.fail(name, "ports", "stop whatever listens there (ss -ltnp shows it)", "port(s) %s already in use", strings.Join(busy, ", "))
		}
	}
	if !p.skip(r, "kernel") && (h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker)) {
		if !f.BrNetfilter {
			p.fail(name, "kernel", "load it (modprobe br_netfilter) or use a kernel with it built in", "bridge netfilter is not available (/proc/sys/net/bridge missing)")
		}
		if !f.Overlay {
			p.fail(name, "kernel", "load it (modprobe overlay) or use a kernel with it built in", "overlay filesystem is not available")
		}
	}
	if p.Install && f.Firewall != "" && !p.skip(r, "firewall") {
		pods := h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker)
		ports := firewallPorts(r, h)
		need := strings.Join(ports, ", ") + " open"
		if pods {
			need += " and the pod network's traffic between nodes (" + r.Cluster.Spec.Kubernetes.PodCIDR + ", routed) allowed"
		}
		p.fail(name, "firewall", firewallHint(f.Firewall, ports, pods, r.Cluster.Spec.Kubernetes.PodCIDR),
			"%s is active, and k4t does not open ports in it yet; this host needs %s", f.Firewall, need)
	}
	if f.SELinux == "enforcing" {
		r.Events.Warnf(p.Name(), name, "SELinux is enforcing and k4t sets no SELinux labels for containerd and kubelet yet: if pods fail with \"permission denied\", make it permissive (setenforce 0, and SELINUX=permissive in /etc/selinux/config)")
	}
	if h.HasRole(v1alpha1.RoleSLB) && f.PkgManager == "" && !p.skip(r, "packages") {
		p.fail(name, "packages", "install haproxy and keepalived by hand, or use a distribution with apt, dnf, yum or apk", "no supported package manager found")
	}
	return nil, nil
}

// Check reports every problem found on every host at once, then checks what
// only the whole cluster shows: clock skew and duplicate hostnames.
func (p *Preflight) Check(ctx context.Context, r *engine.Run) error {
	if !p.skip(r, "clock") && len(p.clocks) > 1 {
		var lo, hi string
		for h, c := range p.clocks {
			if lo == "" || c.offset < p.clocks[lo].offset {
				lo = h
			}
			if hi == "" || c.offset > p.clocks[hi].offset {
				hi = h
			}
		}
		// Only what the round trips cannot explain counts as skew.
		skew := p.clocks[hi].offset - p.clocks[lo].offset - p.clocks[hi].uncertainty - p.clocks[lo].uncertainty
		if skew > 2*time.Second {
			p.fail(hi, "clock", "synchronise clocks (chrony or systemd-timesyncd); etcd and certificates need it", "clock is %s ahead of %s", skew.Round(time.Millisecond), lo)
		}
	}
	if !p.Restore {
		from, err := RestorePending(r)
		if err != nil {
			return err
		}
		if from != "" {
			p.fail("", "etcd-restore", "finish it first: k4t etcd restore --from "+from+" -f hosts.yaml",
				"an etcd restore from %s stopped half-way: etcd may be stopped or half restored, and the control plane paused", from)
		}
	}
	if len(p.problems) == 0 {
		r.Events.Infof("preflight", "", "%d host(s) passed preflight", len(r.Cluster.Spec.Hosts))
		return nil
	}
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Error() < p.problems[j].Error() })
	return errors.Join(p.problems...)
}

// firewallPorts lists what a host's roles need open in a host firewall,
// as firewalld names them; the pod network's traffic between nodes is
// routed (bridge) and needs forwarding allowed.
func firewallPorts(r *engine.Run, h *v1alpha1.Host) []string {
	var out []string
	add := func(ps ...string) {
		for _, p := range ps {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	if h.HasRole(v1alpha1.RoleSLB) {
		add(fmt.Sprintf("%d/tcp", r.Cluster.Spec.ControlPlaneEndpoint.Port), "vrrp (IP protocol 112)")
	}
	if h.HasRole(v1alpha1.RoleMaster) {
		add("6443/tcp")
		if r.Cluster.Spec.Etcd.Topology != v1alpha1.EtcdExternal {
			add("2379-2380/tcp")
		}
		add("10250/tcp", "10257/tcp", "10259/tcp")
	}
	if h.HasRole(v1alpha1.RoleEtcd) {
		add("2379-2380/tcp")
	}
	if h.HasRole(v1alpha1.RoleWorker) {
		add("10250/tcp", "30000-32767/tcp")
	}
	return out
}

// firewallHint says how to open ports in the active firewall and, on a
// Kubernetes node, let the pod network's routed traffic through.
func firewallHint(fw string, ports []string, pods bool, podCIDR string) string {
	var tcp []string
	vrrp := false
	for _, p := range ports {
		if strings.HasPrefix(p, "vrrp") {
			vrrp = true
			continue
		}
		tcp = append(tcp, p)
	}
	var cmd string
	switch fw {
	case "firewalld":
		cmd = "firewall-cmd --permanent"
		for _, p := range tcp {
			cmd += " --add-port=" + p
		}
		if vrrp {
			cmd += " --add-protocol=vrrp"
		}
		if pods {
			cmd += " && firewall-cmd --permanent --zone=trusted --add-source=" + podCIDR
		}
		cmd += " && firewall-cmd --reload"
	case "ufw":
		var parts []string
		for _, p := range tcp {
			parts = append(parts, "ufw allow "+strings.Replace(p, "-", ":", 1))
		}
		if vrrp {
			parts = append(parts, "ufw allow proto vrrp from any (or an iptables rule for -p 112)")
		}
		if pods {
			parts = append(parts, "ufw route allow from "+podCIDR)
		}
		cmd = strings.Join(parts, " && ")
	}
	return "open them (" + cmd + "), then re-run; or, if they are open already, skip the check with preflight.skip: [firewall]"
}
