package v1alpha1

import (
	"net/netip"
	"time"
)

// Defaults applied by SetDefaults.
const (
	DefaultName              = "k4t"
	DefaultSSHPort           = 22
	DefaultUser              = "root"
	DefaultAPIServerPort     = 6443
	DefaultKubernetesVersion = "v1.37.2"
	DefaultPodCIDR           = "10.244.0.0/16"
	DefaultServiceCIDR       = "10.96.0.0/12"
	DefaultClusterDomain     = "cluster.local"
	DefaultEtcdVersion       = "v3.6.16"
	DefaultEtcdDataDir       = "/var/lib/etcd"
	DefaultNetworkPlugin     = NetworkBridge
	DefaultVirtualRouterID   = 51
	DefaultVIPPrefixV4       = 24
	DefaultVIPPrefixV6       = 64
	DefaultAdvertInterval    = time.Second
	DefaultConnectTimeout    = 10 * time.Second
	DefaultCertValidity      = 8760 * time.Hour  // 1 year
	DefaultCAValidity        = 87600 * time.Hour // 10 years
)

// Network plugins.
const (
	NetworkBridge   = "bridge"   // k4t-managed bridge CNI plus routes between nodes
	NetworkManifest = "manifest" // a CNI manifest file applied with the cluster's API
)

// SetDefaults fills every unset field that has a default. It is idempotent
// and never overwrites a value the user wrote.
func (c *Cluster) SetDefaults() {
	if c.Metadata.Name == "" {
		c.Metadata.Name = DefaultName
	}
	s := &c.Spec
	for i := range s.Hosts {
		h := &s.Hosts[i]
		setInt(&h.Port, DefaultSSHPort)
		setString(&h.User, DefaultUser)
		setString(&h.InternalAddress, h.Address)
		setDuration(&h.SSH.ConnectTimeout, DefaultConnectTimeout)
	}
	for i := range s.Bastions {
		b := &s.Bastions[i]
		setInt(&b.Port, DefaultSSHPort)
		setString(&b.User, DefaultUser)
		setDuration(&b.SSH.ConnectTimeout, DefaultConnectTimeout)
	}

	setInt(&s.ControlPlaneEndpoint.Port, DefaultAPIServerPort)
	if s.ControlPlaneEndpoint.Address == "" && c.IsLightweight() {
		if ms := c.Masters(); len(ms) == 1 {
			s.ControlPlaneEndpoint.Address = ms[0].InternalAddress
		}
	}
	setInt(&s.LoadBalancer.VirtualRouterID, DefaultVirtualRouterID)
	vip6 := false
	if a, err := netip.ParseAddr(s.ControlPlaneEndpoint.Address); err == nil && a.Is6() && !a.Is4In6() {
		vip6 = true
	}
	if s.LoadBalancer.VIPPrefix == 0 {
		s.LoadBalancer.VIPPrefix = DefaultVIPPrefixV4
		if vip6 {
			s.LoadBalancer.VIPPrefix = DefaultVIPPrefixV6
		}
	}
	if s.LoadBalancer.VRRPVersion == 0 {
		s.LoadBalancer.VRRPVersion = 2
		if vip6 {
			s.LoadBalancer.VRRPVersion = 3
		}
	}
	setDuration(&s.LoadBalancer.AdvertInterval, DefaultAdvertInterval)

	k := &s.Kubernetes
	setString(&k.Version, DefaultKubernetesVersion)
	setString(&k.PodCIDR, DefaultPodCIDR)
	setString(&k.ServiceCIDR, DefaultServiceCIDR)
	setString(&k.ClusterDomain, DefaultClusterDomain)

	e := &s.Etcd
	if e.Topology == "" {
		e.Topology = EtcdStacked
		if len(c.HostsWithRole(RoleEtcd)) > 0 {
			e.Topology = EtcdExternal
		}
	}
	setString(&e.Version, DefaultEtcdVersion)
	setString(&e.DataDir, DefaultEtcdDataDir)

	setString(&s.Network.Plugin, DefaultNetworkPlugin)
	setDuration(&s.Certificates.Validity, DefaultCertValidity)
	setDuration(&s.Certificates.CAValidity, DefaultCAValidity)
	for i := range s.StateBackup.Targets {
		t := &s.StateBackup.Targets[i]
		setDuration(&t.Every, time.Hour)
		setInt(&t.Keep, 24)
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setDuration(p *Duration, v time.Duration) {
	if p.Duration == 0 {
		p.Duration = v
	}
}
