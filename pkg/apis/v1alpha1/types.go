// Package v1alpha1 holds the k4t inventory types (apiVersion k4t.io/v1alpha1,
// kind Cluster): what a user writes in hosts.yaml, with its defaults
// (SetDefaults), its validation (Validate, with field paths and line numbers)
// and the strict loader (Load, Parse). Its only I/O is Load reading one file.
package v1alpha1

const (
	APIVersion = "k4t.io/v1alpha1"
	Kind       = "Cluster"
)

// Role is what a host does in the cluster.
type Role string

const (
	RoleSLB    Role = "slb"    // HAProxy + keepalived holding the VIP
	RoleMaster Role = "master" // kubeadm control plane (+ stacked etcd)
	RoleWorker Role = "worker" // kubelet + containerd
	RoleEtcd   Role = "etcd"   // external etcd member
)

// Roles lists every known role, in pipeline order.
var Roles = []Role{RoleSLB, RoleEtcd, RoleMaster, RoleWorker}

// Cluster is the whole inventory.
type Cluster struct {
	APIVersion string      `json:"apiVersion" yaml:"apiVersion"`
	Kind       string      `json:"kind" yaml:"kind"`
	Metadata   ObjectMeta  `json:"metadata" yaml:"metadata"`
	Spec       ClusterSpec `json:"spec" yaml:"spec"`
}

type ObjectMeta struct {
	Name string `json:"name" yaml:"name"`
}

type ClusterSpec struct {
	// Hosts are the machines k4t provisions.
	Hosts []Host `json:"hosts" yaml:"hosts"`
	// Bastions are jump hosts, referred to by name from Host.SSH.Bastion or
	// from another bastion (chains are allowed). k4t provisions nothing on them.
	Bastions []Bastion `json:"bastions,omitempty" yaml:"bastions,omitempty"`
	// ControlPlaneEndpoint is where kube-apiserver is reached: the VIP held by
	// the slb hosts, or the single master's address in a lightweight cluster.
	ControlPlaneEndpoint Endpoint     `json:"controlPlaneEndpoint" yaml:"controlPlaneEndpoint"`
	LoadBalancer         LoadBalancer `json:"loadBalancer,omitempty" yaml:"loadBalancer,omitempty"`
	Kubernetes           Kubernetes   `json:"kubernetes" yaml:"kubernetes"`
	Etcd                 Etcd         `json:"etcd,omitempty" yaml:"etcd,omitempty"`
	Network              Network      `json:"network,omitempty" yaml:"network,omitempty"`
	Artifacts            Artifacts    `json:"artifacts,omitempty" yaml:"artifacts,omitempty"`
	Registry             Registry     `json:"registry,omitempty" yaml:"registry,omitempty"`
	Certificates         Certificates `json:"certificates,omitempty" yaml:"certificates,omitempty"`
	Preflight            Preflight    `json:"preflight,omitempty" yaml:"preflight,omitempty"`
	// StateBackup copies k4t's state dir, encrypted, to hosts of the
	// cluster, so a lost bastion can be rebuilt (k4t state backup).
	StateBackup StateBackup `json:"stateBackup,omitempty" yaml:"stateBackup,omitempty"`
}

// StateBackup lists where copies of the state dir go; none means no copies.
type StateBackup struct {
	Targets []StateBackupTarget `json:"targets,omitempty" yaml:"targets,omitempty"`
}

// StateBackupTarget is one host that keeps copies of the state dir.
type StateBackupTarget struct {
	// Host names a host of the inventory.
	Host string `json:"host" yaml:"host"`
	// Every is how often a scheduled backup copies here; default 1h.
	Every Duration `json:"every,omitempty" yaml:"every,omitempty"`
	// Keep is how many copies stay on the host; default 24.
	Keep int `json:"keep,omitempty" yaml:"keep,omitempty"`
}

// Host is one machine.
type Host struct {
	Name    string `json:"name" yaml:"name"`
	Address string `json:"address" yaml:"address"`
	// InternalAddress is the address cluster traffic uses; defaults to Address.
	InternalAddress string `json:"internalAddress,omitempty" yaml:"internalAddress,omitempty"`
	Port            int    `json:"port,omitempty" yaml:"port,omitempty"`
	User            string `json:"user,omitempty" yaml:"user,omitempty"`
	Roles           []Role `json:"roles" yaml:"roles"`
	SSH             SSH    `json:"ssh,omitempty" yaml:"ssh,omitempty"`
	Sudo            Sudo   `json:"sudo,omitempty" yaml:"sudo,omitempty"`
	// Labels are added to the Kubernetes node.
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// HasRole reports whether h carries role r.
func (h *Host) HasRole(r Role) bool {
	for _, x := range h.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// SSH says how to log in. Any combination may be set; they are tried in the
// order agent, key, password.
type SSH struct {
	// KeyFile is a private key. A passphrase-protected key must be loaded in
	// ssh-agent instead (set Agent).
	KeyFile string `json:"keyFile,omitempty" yaml:"keyFile,omitempty"`
	// Agent uses the keys of the agent at $SSH_AUTH_SOCK.
	Agent bool `json:"agent,omitempty" yaml:"agent,omitempty"`
	// Password is never written inline: it comes from an env var or a file.
	Password *SecretRef `json:"password,omitempty" yaml:"password,omitempty"`
	// Bastion is the name of an entry in spec.bastions to jump through.
	Bastion string `json:"bastion,omitempty" yaml:"bastion,omitempty"`
	// ConnectTimeout bounds the TCP+SSH handshake; default 10s.
	ConnectTimeout Duration `json:"connectTimeout,omitempty" yaml:"connectTimeout,omitempty"`
}

// SecretRef points at a secret outside the inventory.
type SecretRef struct {
	Env  string `json:"env,omitempty" yaml:"env,omitempty"`
	File string `json:"file,omitempty" yaml:"file,omitempty"`
}

// Sudo is used when User is not root.
type Sudo struct {
	Enabled  bool       `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	Password *SecretRef `json:"password,omitempty" yaml:"password,omitempty"`
}

// Bastion is a jump host.
type Bastion struct {
	Name    string `json:"name" yaml:"name"`
	Address string `json:"address" yaml:"address"`
	Port    int    `json:"port,omitempty" yaml:"port,omitempty"`
	User    string `json:"user,omitempty" yaml:"user,omitempty"`
	SSH     SSH    `json:"ssh,omitempty" yaml:"ssh,omitempty"`
}

type Endpoint struct {
	Address string `json:"address" yaml:"address"`
	Port    int    `json:"port,omitempty" yaml:"port,omitempty"`
}

// LoadBalancer tunes the slb tier.
type LoadBalancer struct {
	// VirtualRouterID is keepalived's VRRP id (1-255); default 51.
	VirtualRouterID int `json:"virtualRouterID,omitempty" yaml:"virtualRouterID,omitempty"`
	// Interface carrying the VIP; default: the interface that holds the
	// host's internal address (found by preflight).
	Interface string `json:"interface,omitempty" yaml:"interface,omitempty"`
	// AuthPassword is the VRRP password source (8 chars used); default: a
	// random one kept in the state dir.
	AuthPassword *SecretRef `json:"authPassword,omitempty" yaml:"authPassword,omitempty"`
	// VIPPrefix is the prefix length of the subnet the VIP
	// (spec.controlPlaneEndpoint.address) lives in; every slb host's internal
	// address must be inside it. Default 24 (IPv4) or 64 (IPv6).
	VIPPrefix int `json:"vipPrefix,omitempty" yaml:"vipPrefix,omitempty"`
	// HealthCheckInterval is how often HAProxy checks each kube-apiserver's
	// /readyz; default 1s (a master is out after two failed checks).
	HealthCheckInterval Duration `json:"healthCheckInterval,omitempty" yaml:"healthCheckInterval,omitempty"`
	// VRRPVersion is keepalived's VRRP version: 2 (the default for an IPv4
	// VIP; adverts carry authPassword) or 3 (required for an IPv6 VIP; no
	// authentication, sub-second adverts).
	VRRPVersion int `json:"vrrpVersion,omitempty" yaml:"vrrpVersion,omitempty"`
	// AdvertInterval is the time between VRRP adverts; default 1s. A backup
	// takes the VIP after about three missed adverts, so a holder's death
	// costs ~3.5 intervals: 200ms with vrrpVersion 3 moves the VIP in under
	// a second. Whole seconds with version 2; multiples of 10ms with 3.
	AdvertInterval Duration `json:"advertInterval,omitempty" yaml:"advertInterval,omitempty"`
}

type Kubernetes struct {
	Version       string `json:"version,omitempty" yaml:"version,omitempty"`
	PodCIDR       string `json:"podCIDR,omitempty" yaml:"podCIDR,omitempty"`
	ServiceCIDR   string `json:"serviceCIDR,omitempty" yaml:"serviceCIDR,omitempty"`
	ClusterDomain string `json:"clusterDomain,omitempty" yaml:"clusterDomain,omitempty"`
	// Kubelet tunes the kubelet on every node.
	Kubelet Kubelet `json:"kubelet,omitempty" yaml:"kubelet,omitempty"`
	// Containerd tunes the container runtime on every node.
	Containerd Containerd `json:"containerd,omitempty" yaml:"containerd,omitempty"`
	// KubeProxy tunes kube-proxy on every node.
	KubeProxy KubeProxy `json:"kubeProxy,omitempty" yaml:"kubeProxy,omitempty"`
}

// KubeProxy settings that k4t writes into the KubeProxyConfiguration.
type KubeProxy struct {
	// ConntrackMaxPerCore: kube-proxy sets nf_conntrack_max to this times
	// the CPUs; 0 leaves the host's limit alone (hosts whose /proc/sys is
	// read-only, like containers); unset keeps kube-proxy's default.
	ConntrackMaxPerCore *int `json:"conntrackMaxPerCore,omitempty" yaml:"conntrackMaxPerCore,omitempty"`
}

// Kubelet settings that k4t writes into the KubeletConfiguration. Leave
// them unset on ordinary hosts; containers and small test machines need a
// few (see examples/lab/hosts.yaml).
type Kubelet struct {
	// CgroupDriver is systemd (default) or cgroupfs; containerd follows it.
	CgroupDriver string `json:"cgroupDriver,omitempty" yaml:"cgroupDriver,omitempty"`
	// FailCgroupV1: kubelet >= 1.35 refuses cgroup v1 hosts unless false.
	// Setting it false needs preflight.ignoreErrors: [SystemVerification].
	FailCgroupV1 *bool `json:"failCgroupV1,omitempty" yaml:"failCgroupV1,omitempty"`
	// EvictionHard thresholds, e.g. {"nodefs.available": "1%"}.
	EvictionHard map[string]string `json:"evictionHard,omitempty" yaml:"evictionHard,omitempty"`
	// Image garbage collection thresholds (percent of disk used).
	ImageGCHighThresholdPercent int `json:"imageGCHighThresholdPercent,omitempty" yaml:"imageGCHighThresholdPercent,omitempty"`
	ImageGCLowThresholdPercent  int `json:"imageGCLowThresholdPercent,omitempty" yaml:"imageGCLowThresholdPercent,omitempty"`
}

// Containerd settings.
type Containerd struct {
	// RestrictOOMScoreAdj keeps containers' oom_score_adj at or above
	// containerd's own: needed where containerd lacks CAP_SYS_RESOURCE
	// (inside systemd-nspawn, for example).
	RestrictOOMScoreAdj bool `json:"restrictOOMScoreAdj,omitempty" yaml:"restrictOOMScoreAdj,omitempty"`
}

// EtcdTopology is where etcd runs.
type EtcdTopology string

const (
	EtcdStacked  EtcdTopology = "stacked"  // on the masters
	EtcdExternal EtcdTopology = "external" // on hosts with role etcd
)

type Etcd struct {
	Topology EtcdTopology `json:"topology,omitempty" yaml:"topology,omitempty"`
	Version  string       `json:"version,omitempty" yaml:"version,omitempty"`
	DataDir  string       `json:"dataDir,omitempty" yaml:"dataDir,omitempty"`
}

type Network struct {
	// Plugin is "bridge" (k4t-managed bridge CNI + routes) or "manifest".
	Plugin string `json:"plugin,omitempty" yaml:"plugin,omitempty"`
	// Manifest is a local path applied when Plugin is "manifest".
	Manifest string `json:"manifest,omitempty" yaml:"manifest,omitempty"`
}

// Artifacts says where binaries and images come from.
type Artifacts struct {
	// Bundle is an air-gap bundle that `k4t artifact export` wrote: the
	// tar, or the directory it was unpacked into. Nothing is downloaded.
	Bundle string `json:"bundle,omitempty" yaml:"bundle,omitempty"`
	// Dir is a local directory (a bundle) with a manifest.yaml.
	Dir string `json:"dir,omitempty" yaml:"dir,omitempty"`
	// Manifest is a manifest file whose entries carry URLs or paths.
	Manifest string `json:"manifest,omitempty" yaml:"manifest,omitempty"`
	// Source, when neither dir nor manifest is set: "upstream" (the
	// default) fetches the projects' official releases and registry.k8s.io's
	// images on the bastion, each checked against the checksum its project
	// publishes; "build" takes what hack/build-artifacts/build.sh built in
	// the local cache (the lab).
	Source string `json:"source,omitempty" yaml:"source,omitempty"`
	// Mirrors maps an upstream base URL (https://dl.k8s.io,
	// https://github.com) to a mirror that serves the same layout below it.
	Mirrors map[string]string `json:"mirrors,omitempty" yaml:"mirrors,omitempty"`
}

// Artifact sources.
const (
	ArtifactsUpstream = "upstream"
	ArtifactsBuild    = "build"
)

// Registry says where images are pulled from.
type Registry struct {
	// Mirrors maps a registry host (registry.k8s.io) to mirrors tried in
	// order before it: "https://mirror.example:5000", or "http://…" for a
	// registry without TLS.
	Mirrors map[string][]string `json:"mirrors,omitempty" yaml:"mirrors,omitempty"`
	// Pull says who pulls the images of the upstream source: "bastion"
	// (the default: pulled there once, uploaded to each node) or "nodes"
	// (containerd on each node pulls them, through the mirrors; the bastion
	// only pins each tag's digest, which the nodes' pulls must match).
	Pull string `json:"pull,omitempty" yaml:"pull,omitempty"`
	// CA maps a registry or mirror server (host or host:port, as in its
	// URL) to a PEM file on the bastion with the CA that signed its TLS
	// certificate: trusted by the bastion's pulls and, written beside the
	// hosts.toml, by containerd on every node.
	CA map[string]string `json:"ca,omitempty" yaml:"ca,omitempty"`
}

// Who pulls images.
const (
	PullBastion = "bastion"
	PullNodes   = "nodes"
)

type Certificates struct {
	// Validity of leaf certificates; default 8760h (1 year).
	Validity Duration `json:"validity,omitempty" yaml:"validity,omitempty"`
	// CAValidity of the CAs; default 87600h (10 years).
	CAValidity Duration `json:"caValidity,omitempty" yaml:"caValidity,omitempty"`
}

// Preflight lists, explicitly and narrowly, what may be ignored.
type Preflight struct {
	// IgnoreErrors are kubeadm preflight check names passed to
	// --ignore-preflight-errors. "all" is refused.
	IgnoreErrors []string `json:"ignoreErrors,omitempty" yaml:"ignoreErrors,omitempty"`
	// Skip names k4t preflight checks to skip.
	Skip []string `json:"skip,omitempty" yaml:"skip,omitempty"`
}
