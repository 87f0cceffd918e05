package templates

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// SysctlPath is where SysctlConf's file goes. Apply it with
// `sysctl -p SysctlPath`: `sysctl --system` also replays the distribution's
// files, which fail on read-only kernel.* keys inside containers.
const SysctlPath = "/etc/sysctl.d/99-k4t.conf"

// SysctlInput selects the kernel settings of one host; at least one is set.
type SysctlInput struct {
	// KubernetesNode sets net.ipv4.ip_forward=1 and
	// net.bridge.bridge-nf-call-ip{,6}tables=1. Set on hosts running kubelet;
	// the net.bridge keys exist only once br_netfilter is loaded (or built
	// in), so load it before `sysctl -p`.
	KubernetesNode bool
	// NonLocalBind sets net.ipv4.ip_nonlocal_bind=1, so HAProxy can bind the
	// VIP on the slb host that does not hold it. Set on slb hosts.
	NonLocalBind bool
}

// SysctlConf renders SysctlPath.
func SysctlConf(in SysctlInput) ([]byte, error) {
	if !in.KubernetesNode && !in.NonLocalBind {
		return nil, errors.New("99-k4t.conf: invalid input: set KubernetesNode, NonLocalBind or both (the file would be empty)")
	}
	return render("sysctl.conf.tmpl", in)
}

// Container runtime defaults.
const (
	ContainerdConfigPath  = "/etc/containerd/config.toml"
	ContainerdSocket      = "/run/containerd/containerd.sock"
	DefaultContainerdBin  = "/usr/local/bin/containerd"
	DefaultCNIBinDir      = "/opt/cni/bin"
	DefaultCNIConfDir     = "/etc/cni/net.d"
	DefaultContainerdPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ContainerdInput is containerd 2.x's config.toml (config version 3) for CRI.
type ContainerdInput struct {
	// SandboxImage is the pinned pause image, e.g.
	// "registry.k8s.io/pause:3.10.2": it must be the one imported offline.
	SandboxImage string
	// RuncPath is the runc binary the runc runtime uses (BinaryName), e.g.
	// "/usr/local/sbin/runc".
	RuncPath string
	// SystemdCgroup makes runc use the systemd cgroup driver; it must match
	// the kubelet's cgroupDriver ("systemd" when true, "cgroupfs" when
	// false).
	SystemdCgroup bool
	// RestrictOOMScoreAdj keeps containers' oom_score_adj at or above
	// containerd's own; needed where containerd lacks CAP_SYS_RESOURCE
	// (e.g. inside systemd-nspawn).
	RestrictOOMScoreAdj bool
	// CNIBinDir and CNIConfDir; defaults /opt/cni/bin and /etc/cni/net.d.
	CNIBinDir  string
	CNIConfDir string
	// RegistryConfigPath, when set, is where containerd reads each
	// registry's hosts.toml (RegistryHostsDir): registry mirrors.
	RegistryConfigPath string
}

// RegistryHostsDir holds a hosts.toml per registry: DIR/REGISTRY/hosts.toml.
const RegistryHostsDir = "/etc/containerd/certs.d"

// RegistryHostsInput is one registry's hosts.toml: the mirrors containerd
// tries, in order, before the registry itself.
type RegistryHostsInput struct {
	Registry string   // e.g. registry.k8s.io
	Mirrors  []string // e.g. https://mirror.example:5000, or http://… without TLS
	// CAs maps a mirror (as in Mirrors) to the CA file on the node that
	// its TLS certificate is checked against.
	CAs map[string]string
}

// RegistryHosts renders RegistryHostsDir/<registry>/hosts.toml.
func RegistryHosts(in RegistryHostsInput) ([]byte, error) {
	p := problems{what: "hosts.toml of " + in.Registry}
	if in.Registry == "" || strings.ContainsAny(in.Registry, "/ '\"") {
		p.add("Registry: %q must be a registry host, e.g. registry.k8s.io", in.Registry)
	}
	for _, m := range in.Mirrors {
		if !(strings.HasPrefix(m, "http://") || strings.HasPrefix(m, "https://")) || containsSpace(m) || containsQuote(m) {
			p.add("mirror %q must be an http(s) URL", m)
		}
	}
	for m, ca := range in.CAs {
		if !slices.Contains(in.Mirrors, m) || !strings.HasPrefix(m, "https://") {
			p.add("CA for %q: not one of the https mirrors", m)
		}
		p.absPath("CA of "+m, ca)
		if containsQuote(ca) {
			p.add("CA of %s: %q holds a quote", m, ca)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	server := "https://" + in.Registry
	if in.Registry == "docker.io" {
		server = "https://registry-1.docker.io"
	}
	return render("hosts.toml.tmpl", struct {
		RegistryHostsInput
		Server string
	}{in, server})
}

// ContainerdConfig renders ContainerdConfigPath.
func ContainerdConfig(in ContainerdInput) ([]byte, error) {
	p := problems{what: "containerd config.toml"}
	if in.SandboxImage == "" || containsSpace(in.SandboxImage) || containsQuote(in.SandboxImage) {
		p.add("SandboxImage: %q must be an image reference, e.g. registry.k8s.io/pause:3.10.2", in.SandboxImage)
	}
	p.absPath("RuncPath", in.RuncPath)
	in.CNIBinDir = orDefault(in.CNIBinDir, DefaultCNIBinDir)
	in.CNIConfDir = orDefault(in.CNIConfDir, DefaultCNIConfDir)
	p.absPath("CNIBinDir", in.CNIBinDir)
	p.absPath("CNIConfDir", in.CNIConfDir)
	if in.RegistryConfigPath != "" {
		p.absPath("RegistryConfigPath", in.RegistryConfigPath)
	}
	for _, s := range []string{in.RuncPath, in.CNIBinDir, in.CNIConfDir, in.RegistryConfigPath} {
		if containsQuote(s) || containsSpace(s) {
			p.add("path %q may not hold quotes or spaces", s)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return render("containerd.toml.tmpl", in)
}

// ContainerdUnitInput is containerd.service.
type ContainerdUnitInput struct {
	// BinaryPath of containerd; default /usr/local/bin/containerd.
	BinaryPath string
	// PATH for containerd, which finds containerd-shim-runc-v2 on it: put the
	// directory of the shipped shim first where a distribution shim exists.
	// Default DefaultContainerdPATH.
	PATH string
}

// ContainerdUnit renders /etc/systemd/system/containerd.service.
func ContainerdUnit(in ContainerdUnitInput) ([]byte, error) {
	p := problems{what: "containerd.service"}
	in.BinaryPath = orDefault(in.BinaryPath, DefaultContainerdBin)
	in.PATH = orDefault(in.PATH, DefaultContainerdPATH)
	p.absPath("BinaryPath", in.BinaryPath)
	if containsSpace(in.BinaryPath) || containsSpace(in.PATH) || containsQuote(in.PATH) {
		p.add("BinaryPath and PATH may not hold spaces or quotes")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return render("containerd.service.tmpl", in)
}

// Kubelet unit paths.
const (
	KubeletUnitPath   = "/etc/systemd/system/kubelet.service"
	KubeletDropInPath = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
	DefaultKubeletBin = "/usr/local/bin/kubelet"
)

// KubeletInput is the kubelet unit and its kubeadm drop-in.
type KubeletInput struct {
	// BinaryPath of kubelet; default /usr/local/bin/kubelet.
	BinaryPath string
}

func (in KubeletInput) check(what string) (KubeletInput, error) {
	p := problems{what: what}
	in.BinaryPath = orDefault(in.BinaryPath, DefaultKubeletBin)
	p.absPath("BinaryPath", in.BinaryPath)
	if containsSpace(in.BinaryPath) {
		p.add("BinaryPath: %q may not hold spaces", in.BinaryPath)
	}
	return in, p.err()
}

// KubeletUnit renders KubeletUnitPath: kubelet without flags, restarted
// forever (it crash-loops until kubeadm init/join writes its config).
func KubeletUnit(in KubeletInput) ([]byte, error) {
	in, err := in.check("kubelet.service")
	if err != nil {
		return nil, err
	}
	return render("kubelet.service.tmpl", in)
}

// KubeletDropIn renders KubeletDropInPath, which hands kubelet the
// kubeconfigs, config file and flags that kubeadm writes.
func KubeletDropIn(in KubeletInput) ([]byte, error) {
	in, err := in.check("10-kubeadm.conf")
	if err != nil {
		return nil, err
	}
	return render("kubelet-dropin.conf.tmpl", in)
}

// BridgeCNIPath is where BridgeCNI's file goes (under DefaultCNIConfDir).
const BridgeCNIPath = DefaultCNIConfDir + "/10-k4t-bridge.conflist"

// BridgeInput is one node's bridge CNI network.
type BridgeInput struct {
	// PodCIDR is this node's .spec.podCIDR, e.g. "10.244.1.0/24".
	PodCIDR string
	// Bridge is the Linux bridge name; default "cni0".
	Bridge string
	// MTU of the bridge and pod interfaces; zero keeps the plugin's default.
	MTU int
}

// BridgeCNI renders BridgeCNIPath: the bridge plugin as the pods' gateway
// (isGateway) with masquerade for traffic leaving the pod range (ipMasq),
// hairpin for pods reaching themselves through a Service, host-local IPAM on
// PodCIDR, and portmap for hostPort. Other nodes' pod ranges are reached
// through PodRoutes.
func BridgeCNI(in BridgeInput) ([]byte, error) {
	p := problems{what: "bridge CNI conflist"}
	p.prefix("PodCIDR", in.PodCIDR)
	in.Bridge = orDefault(in.Bridge, "cni0")
	p.name("Bridge", in.Bridge)
	if len(in.Bridge) > 15 {
		p.add("Bridge: %q is longer than 15 characters (Linux IFNAMSIZ)", in.Bridge)
	}
	if in.MTU != 0 && (in.MTU < 576 || in.MTU > 65535) {
		p.add("MTU: %d is outside 576-65535", in.MTU)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	pf := netip.MustParsePrefix(in.PodCIDR)
	defRoute := "0.0.0.0/0"
	if pf.Addr().Is6() {
		defRoute = "::/0"
	}
	return render("bridge.conflist.tmpl", map[string]any{
		"PodCIDR": in.PodCIDR, "Bridge": in.Bridge, "MTU": in.MTU, "DefaultRoute": defRoute,
	})
}

// Route is one static route.
type Route struct {
	Destination string // CIDR, e.g. another node's podCIDR
	Gateway     string // IP, e.g. that node's internal address
}

// NodeResetInput is what `k4t reset` takes away on one host; each part is
// one tier's share, so a reset goes tier by tier.
type NodeResetInput struct {
	Host string
	// Kube: kubeadm's node, kubelet, containerd and the pod network.
	Kube bool
	// Etcd: k4t's etcd unit, its config and certificates, and its data dir.
	Etcd bool
	// EtcdData is the data dir; default /var/lib/etcd.
	EtcdData string
	// SLB: keepalived and HAProxy, and VIP if the host still holds it.
	SLB bool
	VIP string
	// OS: k4t's sysctls and its block in /etc/hosts.
	OS bool
	// Binaries that k4t installed, removed last.
	Binaries []string
	// HostsBegin and HostsEnd are the lines around k4t's /etc/hosts block.
	HostsBegin, HostsEnd string
}

// NodeReset renders the reset script, run with `sh -s` (never stored on
// the host).
func NodeReset(in NodeResetInput) ([]byte, error) {
	p := problems{what: "node-reset.sh"}
	p.name("Host", in.Host)
	in.EtcdData = orDefault(in.EtcdData, DefaultEtcdData)
	p.absPath("EtcdData", in.EtcdData)
	if in.EtcdData == "/" || containsSpace(in.EtcdData) {
		p.add("EtcdData: %q is not a data dir k4t removes", in.EtcdData)
	}
	if in.SLB && net.ParseIP(in.VIP) == nil {
		p.add("VIP: %q is not an IP address", in.VIP)
	}
	for _, b := range in.Binaries {
		p.absPath("Binaries", b)
		if containsSpace(b) || strings.ContainsAny(b, "*?[") {
			p.add("Binaries: %q is not one file", b)
		}
	}
	if in.OS && (in.HostsBegin == "" || in.HostsEnd == "" || strings.ContainsAny(in.HostsBegin+in.HostsEnd, "/\\'")) {
		p.add("HostsBegin/HostsEnd: %q, %q cannot delimit a block for sed", in.HostsBegin, in.HostsEnd)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	var parts []string
	for _, x := range []struct {
		on   bool
		name string
	}{{in.Kube, "kubernetes"}, {in.Etcd, "etcd"}, {in.SLB, "load balancer"}, {in.OS, "os"}} {
		if x.on {
			parts = append(parts, x.name)
		}
	}
	if len(in.Binaries) > 0 {
		parts = append(parts, "binaries")
	}
	return render("node-reset.sh.tmpl", struct {
		NodeResetInput
		Parts, Crictl, PodRoutes, Kubelet, CNIConf, Units, CertsFallback, Sysctl string
		EtcdSnapshot, EtcdSnapshotDir                                            string
	}{in, strings.Join(parts, ", "), "crictl --runtime-endpoint unix://" + ContainerdSocket, PodRoutesPath, "/var/lib/kubelet",
		BridgeCNIPath, SystemdUnitDir, CertsFallbackUnit, SysctlPath, EtcdSnapshotUnit, EtcdSnapshotDir})
}
