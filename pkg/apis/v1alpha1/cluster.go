package v1alpha1

import (
	"fmt"
	"net"
	"strconv"
)

// HostsWithRole returns the hosts carrying role r, in inventory order. The
// pointers point into c.Spec.Hosts.
func (c *Cluster) HostsWithRole(r Role) []*Host {
	var out []*Host
	for i := range c.Spec.Hosts {
		if c.Spec.Hosts[i].HasRole(r) {
			out = append(out, &c.Spec.Hosts[i])
		}
	}
	return out
}

// Masters returns the control plane hosts.
func (c *Cluster) Masters() []*Host { return c.HostsWithRole(RoleMaster) }

// Workers returns the hosts with role worker.
func (c *Cluster) Workers() []*Host { return c.HostsWithRole(RoleWorker) }

// SLBs returns the load balancer hosts (HAProxy + keepalived).
func (c *Cluster) SLBs() []*Host { return c.HostsWithRole(RoleSLB) }

// Nodes returns the hosts that become Kubernetes nodes (masters and
// workers), each once, in inventory order.
func (c *Cluster) Nodes() []*Host {
	var out []*Host
	for i := range c.Spec.Hosts {
		h := &c.Spec.Hosts[i]
		if h.HasRole(RoleMaster) || h.HasRole(RoleWorker) {
			out = append(out, h)
		}
	}
	return out
}

// EtcdMembers returns the hosts running etcd: the masters when the topology
// is stacked (or unset), the etcd hosts when it is external.
func (c *Cluster) EtcdMembers() []*Host {
	if c.Spec.Etcd.Topology == EtcdExternal {
		return c.HostsWithRole(RoleEtcd)
	}
	return c.Masters()
}

// FirstMaster is the master that runs 'kubeadm init'; nil when there is none.
func (c *Cluster) FirstMaster() *Host {
	if ms := c.Masters(); len(ms) > 0 {
		return ms[0]
	}
	return nil
}

// IsLightweight reports whether the cluster has no slb hosts: the control
// plane endpoint is then the single master itself (or an external load
// balancer the user names).
func (c *Cluster) IsLightweight() bool { return len(c.SLBs()) == 0 }

// Host returns the host named name, or nil.
func (c *Cluster) Host(name string) *Host {
	for i := range c.Spec.Hosts {
		if c.Spec.Hosts[i].Name == name {
			return &c.Spec.Hosts[i]
		}
	}
	return nil
}

// Bastion returns the bastion named name, or nil.
func (c *Cluster) Bastion(name string) *Bastion {
	for i := range c.Spec.Bastions {
		if c.Spec.Bastions[i].Name == name {
			return &c.Spec.Bastions[i]
		}
	}
	return nil
}

// BastionChain returns the jump hosts to go through to reach a host whose
// SSH.Bastion is name, first hop first (the one dialled directly). It is
// empty for "". An unknown name or a cycle is an error (Validate reports
// both beforehand).
func (c *Cluster) BastionChain(name string) ([]*Bastion, error) {
	var chain []*Bastion
	seen := map[string]bool{}
	for name != "" {
		if seen[name] {
			return nil, fmt.Errorf("bastion %q: the bastion chain loops back to itself; break the cycle in spec.bastions", name)
		}
		seen[name] = true
		b := c.Bastion(name)
		if b == nil {
			return nil, fmt.Errorf("bastion %q is not defined in spec.bastions", name)
		}
		chain = append([]*Bastion{b}, chain...)
		name = b.SSH.Bastion
	}
	return chain, nil
}

// APIServerEndpoint is "address:port" of the control plane endpoint (the VIP
// or the single master), bracketed for IPv6.
func (c *Cluster) APIServerEndpoint() string {
	e := c.Spec.ControlPlaneEndpoint
	return net.JoinHostPort(e.Address, strconv.Itoa(e.Port))
}

// Without returns a copy of c whose hosts leave out the host named name
// (a node `k4t delete node` took out of the cluster). Host pointers taken
// from c stay valid.
func (c *Cluster) Without(name string) *Cluster {
	out := *c
	out.Spec.Hosts = nil
	for _, h := range c.Spec.Hosts {
		if h.Name != name {
			out.Spec.Hosts = append(out.Spec.Hosts, h)
		}
	}
	return &out
}
