// Package v1alpha1 holds the k4t inventory types (apiVersion k4t.io/v1alpha1,
// kind Cluster): what a user writes in hosts.yaml. It does no I/O.
package v1alpha1

import "time"

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
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ObjectMeta  `json:"metadata"`
	Spec       ClusterSpec `json:"spec"`
}

type ObjectMeta struct {
	Name string `json:"name"`
}

type ClusterSpec struct {
	// Hosts are the machines k4t provisions.
	Hosts []Host `json:"hosts"`
	// Bastions are jump hosts, referred to by name from Host.SSH.Bastion or
	// from another bastion (chains are allowed). k4t provisions nothing on them.
	Bastions []Bastion `json:"bastions,omitempty"`
	// ControlPlaneEndpoint is where kube-apiserver is reached: the VIP held by
	// the slb hosts, or the single master's address in a lightweight cluster.
	ControlPlaneEndpoint Endpoint     `json:"controlPlaneEndpoint"`
	LoadBalancer         LoadBalancer `json:"loadBalancer,omitempty"`
	Kubernetes           Kubernetes   `json:"kubernetes"`
	Etcd                 Etcd         `json:"etcd,omitempty"`
	Network              Network      `json:"network,omitempty"`
	Artifacts            Artifacts    `json:"artifacts,omitempty"`
	Certificates         Certificates `json:"certificates,omitempty"`
	Preflight            Preflight    `json:"preflight,omitempty"`
}

// Host is one machine.
type Host struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// InternalAddress is the address cluster traffic uses; defaults to Address.
	InternalAddress string `json:"internalAddress,omitempty"`
	Port            int    `json:"port,omitempty"`
	User            string `json:"user,omitempty"`
	Roles           []Role `json:"roles"`
	SSH             SSH    `json:"ssh,omitempty"`
	Sudo            Sudo   `json:"sudo,omitempty"`
	// Labels are added to the Kubernetes node.
	Labels map[string]string `json:"labels,omitempty"`
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
	KeyFile string `json:"keyFile,omitempty"`
	// Agent uses the keys of the agent at $SSH_AUTH_SOCK.
	Agent bool `json:"agent,omitempty"`
	// Password is never written inline: it comes from an env var or a file.
	Password *SecretRef `json:"password,omitempty"`
	// Bastion is the name of an entry in spec.bastions to jump through.
	Bastion string `json:"bastion,omitempty"`
	// ConnectTimeout bounds the TCP+SSH handshake; default 10s.
	ConnectTimeout Duration `json:"connectTimeout,omitempty"`
}

// SecretRef points at a secret outside the inventory.
type SecretRef struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// Sudo is used when User is not root.
type Sudo struct {
	Enabled  bool       `json:"enabled,omitempty"`
	Password *SecretRef `json:"password,omitempty"`
}

// Bastion is a jump host.
type Bastion struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port,omitempty"`
	User    string `json:"user,omitempty"`
	SSH     SSH    `json:"ssh,omitempty"`
}

type Endpoint struct {
	Address string `json:"address"`
	Port    int    `json:"port,omitempty"`
}

// LoadBalancer tunes the slb tier.
type LoadBalancer struct {
	// VirtualRouterID is keepalived's VRRP id (1-255); default 51.
	VirtualRouterID int `json:"virtualRouterID,omitempty"`
	// Interface carrying the VIP; default: the interface that holds the
	// host's internal address (found by preflight).
	Interface string `json:"interface,omitempty"`
	// AuthPassword is the VRRP password source (8 chars used); default: a
	// random one kept in the state dir.
	AuthPassword *SecretRef `json:"authPassword,omitempty"`
}

type Kubernetes struct {
	Version       string `json:"version,omitempty"`
	PodCIDR       string `json:"podCIDR,omitempty"`
	ServiceCIDR   string `json:"serviceCIDR,omitempty"`
	ClusterDomain string `json:"clusterDomain,omitempty"`
}

// EtcdTopology is where etcd runs.
type EtcdTopology string

const (
	EtcdStacked  EtcdTopology = "stacked"  // on the masters
	EtcdExternal EtcdTopology = "external" // on hosts with role etcd
)

type Etcd struct {
	Topology EtcdTopology `json:"topology,omitempty"`
	Version  string       `json:"version,omitempty"`
	DataDir  string       `json:"dataDir,omitempty"`
}

type Network struct {
	// Plugin is "bridge" (k4t-managed bridge CNI + routes) or "manifest".
	Plugin string `json:"plugin,omitempty"`
	// Manifest is a local path applied when Plugin is "manifest".
	Manifest string `json:"manifest,omitempty"`
}

// Artifacts says where binaries and images come from.
type Artifacts struct {
	// Dir is a local directory (a bundle) with a manifest.yaml.
	Dir string `json:"dir,omitempty"`
	// Manifest is a manifest file whose entries carry URLs or paths.
	Manifest string `json:"manifest,omitempty"`
}

type Certificates struct {
	// Validity of leaf certificates; default 8760h (1 year).
	Validity Duration `json:"validity,omitempty"`
	// CAValidity of the CAs; default 87600h (10 years).
	CAValidity Duration `json:"caValidity,omitempty"`
}

// Preflight lists, explicitly and narrowly, what may be ignored.
type Preflight struct {
	// IgnoreErrors are kubeadm preflight check names passed to
	// --ignore-preflight-errors. "all" is refused.
	IgnoreErrors []string `json:"ignoreErrors,omitempty"`
	// Skip names k4t preflight checks to skip.
	Skip []string `json:"skip,omitempty"`
}

// Duration is a time.Duration written as "2h", "720h", "30d" (days allowed).
type Duration struct{ time.Duration }
