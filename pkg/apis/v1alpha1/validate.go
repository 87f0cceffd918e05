package v1alpha1

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Validate checks c (normally after SetDefaults) and returns every problem it
// finds, errors and warnings. Problems carry field paths; lines are 0 because
// a Cluster built in code has none (Parse fills them in).
func (c *Cluster) Validate() []Problem { return validate(c, nil) }

type checker struct {
	c   *Cluster
	pos positions
	out []Problem
}

func (v *checker) add(sev Severity, path, hint, format string, a ...any) {
	v.out = append(v.out, Problem{Path: path, Line: v.pos.line(path), Severity: sev, Message: fmt.Sprintf(format, a...), Hint: hint})
}

func (v *checker) errf(path, hint, format string, a ...any) { v.add(Error, path, hint, format, a...) }

func (v *checker) warnf(path, hint, format string, a ...any) {
	v.add(Warning, path, hint, format, a...)
}

func validate(c *Cluster, pos positions) []Problem {
	v := &checker{c: c, pos: pos}
	v.header()
	v.strings(reflect.ValueOf(c).Elem(), "")
	v.hosts()
	v.bastions()
	v.topology()
	v.endpoint()
	v.kubernetes()
	v.etcd()
	v.network()
	v.artifacts()
	v.certificates()
	v.preflight()
	v.stateBackup()
	return v.out
}

var (
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	versionRE    = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)
	labelNameRE  = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	interfaceRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,14}$`)
	rolesAsWords = roleList()
)

func roleList() string {
	words := make([]string, len(Roles))
	for i, r := range Roles {
		words[i] = string(r)
	}
	return strings.Join(words, ", ")
}

func isDNSLabel(s string) bool { return len(s) <= 63 && dnsLabelRE.MatchString(s) }

func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

func (v *checker) header() {
	c := v.c
	if c.APIVersion != APIVersion {
		v.errf("apiVersion", "the first line of the inventory is 'apiVersion: "+APIVersion+"'", "apiVersion must be %q, got %q", APIVersion, c.APIVersion)
	}
	if c.Kind != Kind {
		v.errf("kind", "write 'kind: "+Kind+"'", "kind must be %q, got %q", Kind, c.Kind)
	}
	if !isDNSLabel(c.Metadata.Name) {
		v.errf("metadata.name", "use lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit",
			"cluster name %q is not a DNS label", c.Metadata.Name)
	}
}

// strings refuses control characters (newlines, tabs, NUL, ...) in every
// string of the inventory: values end up in config files, unit files and
// command lines, where they would break or inject lines.
func (v *checker) strings(val reflect.Value, p string) {
	switch val.Kind() {
	case reflect.String:
		if i := strings.IndexFunc(val.String(), unicode.IsControl); i >= 0 {
			v.errf(p, "remove it (values are single-line text)", "contains a control character (%q)", val.String()[i:i+1])
		}
	case reflect.Pointer:
		if !val.IsNil() {
			v.strings(val.Elem(), p)
		}
	case reflect.Struct:
		fs := fieldsOf(val.Type())
		for _, name := range fs.names {
			v.strings(val.Field(fs.index[name]), fieldPath(p, name))
		}
	case reflect.Slice:
		for i := range val.Len() {
			v.strings(val.Index(i), itemPath(p, i))
		}
	case reflect.Map:
		iter := val.MapRange()
		for iter.Next() {
			k := iter.Key().String()
			if strings.IndexFunc(k, unicode.IsControl) >= 0 {
				v.errf(keyPath(p, k), "remove it", "key contains a control character")
			}
			v.strings(iter.Value(), keyPath(p, k))
		}
	}
}

func hostPath(i int) string { return itemPath("spec.hosts", i) }

func (v *checker) hosts() {
	hs := v.c.Spec.Hosts
	if len(hs) == 0 {
		v.errf("spec.hosts", "list the machines under spec.hosts, each with name, address and roles", "no hosts")
		return
	}
	names := map[string]int{}
	addrs := map[string]int{}
	internal := map[string]int{}
	for i := range hs {
		h := &hs[i]
		p := hostPath(i)
		switch {
		case h.Name == "":
			v.errf(p+".name", "every host needs a name; it becomes its hostname and node name", "name is required")
		case !isDNSLabel(h.Name):
			v.errf(p+".name", "host names become hostnames and node names: lowercase letters, digits and '-', at most 63",
				"host name %q is not a DNS label", h.Name)
		}
		if j, dup := names[h.Name]; dup && h.Name != "" {
			v.errf(p+".name", "give every host its own name", "duplicate host name %q, also used by %s", h.Name, hostPath(j))
		} else if h.Name != "" {
			names[h.Name] = i
		}

		v.address(p+".address", h.Address)
		if j, dup := addrs[h.Address]; dup && h.Address != "" {
			v.errf(p+".address", "two entries for one machine? merge their roles into one host", "duplicate address %s, also used by %s", h.Address, hostPath(j))
		} else if h.Address != "" {
			addrs[h.Address] = i
		}
		if h.InternalAddress != "" {
			if _, err := netip.ParseAddr(h.InternalAddress); err != nil {
				hint := "cluster traffic needs an IP address"
				if h.InternalAddress == h.Address {
					hint = "address is a DNS name, so set internalAddress to this host's cluster IP"
				}
				v.errf(p+".internalAddress", hint, "internal address %q is not an IP address", h.InternalAddress)
			}
			// An internal address copied from a duplicate address is
			// already reported above.
			if j, dup := internal[h.InternalAddress]; dup && (h.InternalAddress != h.Address || hs[j].InternalAddress != hs[j].Address) {
				v.errf(p+".internalAddress", "every host needs its own cluster IP", "duplicate internal address %s, also used by %s", h.InternalAddress, hostPath(j))
			} else if !dup {
				internal[h.InternalAddress] = i
			}
		}
		v.port(p+".port", h.Port)
		v.roles(p, h)
		v.ssh(p+".ssh", &h.SSH)
		if h.Sudo.Password != nil {
			v.secret(p+".sudo.password", h.Sudo.Password)
			if !h.Sudo.Enabled {
				v.warnf(p+".sudo.password", "set sudo.enabled: true, or remove the password", "a sudo password is given but sudo is not enabled")
			}
		}
		if h.User != "root" && h.User != "" && !h.Sudo.Enabled {
			v.warnf(p+".user", "set sudo.enabled: true on this host", "user %q is not root and sudo is not enabled: provisioning needs root", h.User)
		}
		for k, val := range h.Labels {
			v.label(keyPath(p+".labels", k), k, val)
		}
		if len(h.Labels) > 0 && !h.HasRole(RoleMaster) && !h.HasRole(RoleWorker) {
			v.warnf(p+".labels", "labels go on Kubernetes nodes: masters and workers", "host %q is not a Kubernetes node; its labels are ignored", h.Name)
		}
	}
}

func (v *checker) roles(p string, h *Host) {
	if len(h.Roles) == 0 {
		v.errf(p+".roles", "give it at least one of "+rolesAsWords, "host %q has no role", h.Name)
		return
	}
	seen := map[Role]bool{}
	for j, r := range h.Roles {
		rp := itemPath(p+".roles", j)
		known := false
		for _, k := range Roles {
			known = known || r == k
		}
		switch {
		case !known:
			v.errf(rp, "roles are "+rolesAsWords, "unknown role %q", r)
		case seen[r]:
			v.warnf(rp, "list each role once", "role %q is listed twice", r)
		}
		seen[r] = true
	}
	if seen[RoleSLB] && seen[RoleMaster] {
		v.errf(p+".roles", "put the slb role on other hosts than the masters",
			"host %q is both slb and master: HAProxy binds the VIP's port 6443 and kube-apiserver binds :6443 on every address", h.Name)
	}
}

func (v *checker) port(p string, port int) {
	if port < 1 || port > 65535 {
		v.errf(p, "a TCP port is between 1 and 65535", "port %d is out of range", port)
	}
}

func (v *checker) ssh(p string, s *SSH) {
	if s.Password != nil {
		v.secret(p+".password", s.Password)
	}
	if s.Bastion != "" && v.c.Bastion(s.Bastion) == nil {
		hint := "define it under spec.bastions"
		if names := v.bastionNames(); len(names) > 0 {
			hint = "bastions defined: " + strings.Join(names, ", ")
		}
		v.errf(p+".bastion", hint, "bastion %q is not defined in spec.bastions", s.Bastion)
	}
	if s.ConnectTimeout.Duration < 0 {
		v.errf(p+".connectTimeout", "use a positive duration such as 10s", "connect timeout %s is negative", s.ConnectTimeout)
	}
}

func (v *checker) bastionNames() []string {
	var names []string
	for _, b := range v.c.Spec.Bastions {
		if b.Name != "" {
			names = append(names, b.Name)
		}
	}
	return names
}

func (v *checker) secret(p string, s *SecretRef) {
	if (s.Env == "") == (s.File == "") {
		v.errf(p, "use {env: VARIABLE} or {file: /path/to/file}", "a secret reference needs exactly one of env and file")
	}
}

func (v *checker) label(p, k, val string) {
	name := k
	if prefix, n, ok := strings.Cut(k, "/"); ok {
		name = n
		if !isDNSSubdomain(prefix) {
			v.errf(p, "a label key's prefix is a DNS name, as in example.com/zone", "label key %q has an invalid prefix", k)
		}
	}
	if len(name) > 63 || !labelNameRE.MatchString(name) {
		v.errf(p, "letters, digits, '-', '_' and '.', at most 63, starting and ending with a letter or digit", "label key %q is not valid", k)
	}
	if val != "" && (len(val) > 63 || !labelNameRE.MatchString(val)) {
		v.errf(p, "letters, digits, '-', '_' and '.', at most 63, starting and ending with a letter or digit", "label value %q is not valid", val)
	}
}

func (v *checker) bastions() {
	bs := v.c.Spec.Bastions
	names := map[string]int{}
	for i := range bs {
		b := &bs[i]
		p := itemPath("spec.bastions", i)
		if b.Name == "" {
			v.errf(p+".name", "hosts refer to a bastion by name", "name is required")
		} else if j, dup := names[b.Name]; dup {
			v.errf(p+".name", "give every bastion its own name", "duplicate bastion name %q, also used by spec.bastions[%d]", b.Name, j)
		} else {
			names[b.Name] = i
		}
		v.address(p+".address", b.Address)
		v.port(p+".port", b.Port)
		v.ssh(p+".ssh", &b.SSH)
		// A cycle is reported once, on its first bastion in file order.
		if cycle := v.cycleFrom(i); cycle != nil {
			v.errf(p+".ssh.bastion", "a bastion chain must end at a bastion reached directly", "bastion chain loops: %s", strings.Join(cycle, " -> "))
		}
	}
}

// cycleFrom returns the chain of names when following ssh.bastion from
// bastion i comes back to i and i is the cycle's first bastion in the file.
func (v *checker) cycleFrom(i int) []string {
	bs := v.c.Spec.Bastions
	chain := []string{bs[i].Name}
	seen := map[int]bool{i: true}
	cur := i
	for {
		next := -1
		for j := range bs {
			if bs[cur].SSH.Bastion != "" && bs[j].Name == bs[cur].SSH.Bastion {
				next = j
				break
			}
		}
		if next < 0 {
			return nil
		}
		chain = append(chain, bs[next].Name)
		if next == i {
			return chain
		}
		if seen[next] || next < i {
			return nil // a cycle not through i, or one reported from an earlier bastion
		}
		seen[next] = true
		cur = next
	}
}

// address checks the address k4t reaches a machine on over SSH.
func (v *checker) address(p, addr string) {
	switch {
	case addr == "":
		v.errf(p, "the IP address or DNS name k4t reaches this machine on over SSH", "address is required")
	case !isAddress(addr):
		v.errf(p, "write an IP address or a DNS name", "address %q is neither an IP address nor a DNS name", addr)
	}
}

func isAddress(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return isDNSSubdomain(strings.ToLower(s))
}

// topology checks masters and etcd membership.
func (v *checker) topology() {
	c := v.c
	masters := c.Masters()
	if len(c.Spec.Hosts) > 0 && len(masters) == 0 {
		v.errf("spec.hosts", "give one host (or three, for HA) the role master", "no host has role master")
	}
	etcdHosts := c.HostsWithRole(RoleEtcd)
	topo := c.Spec.Etcd.Topology
	switch topo {
	case EtcdStacked:
		if len(etcdHosts) > 0 {
			v.errf("spec.etcd.topology", "set topology: external, or remove role etcd from "+hostNames(etcdHosts),
				"etcd topology is stacked (etcd on the masters) but %s %s role etcd", hostNames(etcdHosts), hasHave(len(etcdHosts)))
		}
	case EtcdExternal:
		if len(etcdHosts) == 0 {
			v.errf("spec.etcd.topology", "give three hosts the role etcd, or set topology: stacked", "etcd topology is external but no host has role etcd")
		}
	default:
		v.errf("spec.etcd.topology", "stacked (etcd on the masters) or external (etcd on hosts with role etcd)", "unknown etcd topology %q", topo)
		return
	}
	members := c.EtcdMembers()
	if n := len(members); n > 0 && n%2 == 0 {
		last := members[n-1]
		v.errf(hostPath(v.index(last))+".roles", "use an odd number (1, 3 or 5): an even number tolerates no more failures than one fewer",
			"etcd would have %d members (%s: %s)", n, topo, hostNames(members))
	}
}

func (v *checker) index(h *Host) int {
	for i := range v.c.Spec.Hosts {
		if &v.c.Spec.Hosts[i] == h {
			return i
		}
	}
	return -1
}

func hostNames(hs []*Host) string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return strings.Join(names, ", ")
}

// vrrp checks keepalived's VRRP version and advert interval (what
// keepalived accepts for each version).
func (v *checker) vrrp(lb LoadBalancer) {
	const p = "spec.loadBalancer"
	advert := lb.AdvertInterval.Duration
	switch lb.VRRPVersion {
	case 2:
		if advert%time.Second != 0 || advert < time.Second || advert > 255*time.Second {
			v.errf(p+".advertInterval", "whole seconds from 1s to 255s with VRRP version 2; set vrrpVersion: 3 for sub-second adverts",
				"advert interval %s is not whole seconds from 1s to 255s", advert)
		}
		if a, err := netip.ParseAddr(v.c.Spec.ControlPlaneEndpoint.Address); err == nil && a.Is6() && !a.Is4In6() {
			v.errf(p+".vrrpVersion", "set vrrpVersion: 3 (or leave it out)", "an IPv6 VIP needs VRRP version 3")
		}
	case 3:
		if advert%(10*time.Millisecond) != 0 || advert < 10*time.Millisecond || advert > 40*time.Second {
			v.errf(p+".advertInterval", "a multiple of 10ms from 10ms to 40s with VRRP version 3", "advert interval %s is not a multiple of 10ms from 10ms to 40s", advert)
		}
		if lb.AuthPassword != nil {
			v.warnf(p+".authPassword", "remove it: keepalived authenticates no VRRP version 3 advert (k4t sends adverts only to the other slb host)",
				"the VRRP password is not used with version 3")
		}
	default:
		v.errf(p+".vrrpVersion", "2 or 3", "VRRP version %d is unknown", lb.VRRPVersion)
	}
}

func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func (v *checker) endpoint() {
	c := v.c
	e := c.Spec.ControlPlaneEndpoint
	lb := c.Spec.LoadBalancer
	const p = "spec.controlPlaneEndpoint"
	v.port(p+".port", e.Port)
	if lb.VirtualRouterID < 1 || lb.VirtualRouterID > 255 {
		v.errf("spec.loadBalancer.virtualRouterID", "VRRP ids are 1 to 255; pick one no other keepalived on the subnet uses", "virtual router id %d is out of range", lb.VirtualRouterID)
	}
	if lb.AuthPassword != nil {
		v.secret("spec.loadBalancer.authPassword", lb.AuthPassword)
	}
	if lb.Interface != "" && !interfaceRE.MatchString(lb.Interface) {
		v.errf("spec.loadBalancer.interface", "a network interface name such as eth0, at most 15 characters", "interface %q is not a valid interface name", lb.Interface)
	}
	slbs := c.SLBs()
	if len(slbs) > 0 {
		v.vrrp(lb)
	}
	masters := c.Masters()
	if len(slbs) == 0 {
		if e.Address == "" && len(masters) > 1 {
			v.errf(p+".address", "several masters need one endpoint: add two hosts with role slb and a VIP here, or name an external load balancer",
				"no endpoint address and no slb hosts, with %d masters", len(masters))
		} else if e.Address != "" && !isAddress(e.Address) {
			v.errf(p+".address", "write an IP address or a DNS name", "endpoint address %q is neither an IP address nor a DNS name", e.Address)
		}
		return
	}
	if len(slbs) == 1 {
		v.warnf(hostPath(v.index(slbs[0]))+".roles", "add a second slb host so keepalived can move the VIP", "only one slb host: the VIP has no failover")
	}
	if len(masters) == 1 {
		v.warnf(hostPath(v.index(masters[0]))+".roles", "use three masters for a highly available control plane",
			"slb hosts balance a single master: the control plane is not highly available")
	}
	if e.Address == "" {
		v.errf(p+".address", "set it to a free IP address in the slb hosts' subnet: keepalived holds it as the VIP", "the VIP is required when hosts have role slb")
		return
	}
	vip, err := netip.ParseAddr(e.Address)
	if err != nil || vip.Zone() != "" {
		v.errf(p+".address", "the VIP must be an IP address in the slb hosts' subnet", "VIP %q is not an IP address", e.Address)
		return
	}
	vip = vip.Unmap()
	if lb.VIPPrefix < 1 || lb.VIPPrefix > vip.BitLen() {
		v.errf("spec.loadBalancer.vipPrefix", fmt.Sprintf("the prefix length of the slb hosts' subnet, 1 to %d", vip.BitLen()), "VIP prefix /%d is out of range", lb.VIPPrefix)
		return
	}
	subnet := netip.PrefixFrom(vip, lb.VIPPrefix).Masked()
	if vip.Is4() && lb.VIPPrefix < 31 && (vip == subnet.Addr() || vip == lastAddr(subnet)) {
		v.errf(p+".address", "pick a host address inside the subnet", "VIP %s is the network or broadcast address of %s", vip, subnet)
	}
	for i := range c.Spec.Hosts {
		h := &c.Spec.Hosts[i]
		for _, a := range []struct{ field, addr string }{{"address", h.Address}, {"internalAddress", h.InternalAddress}} {
			if ip, err := netip.ParseAddr(a.addr); err == nil && ip.Unmap() == vip && (a.field == "address" || h.InternalAddress != h.Address) {
				v.errf(p+".address", "the VIP must be a free address that no host owns", "VIP %s is the %s of %s", vip, a.field, hostPath(i))
			}
		}
	}
	for _, s := range slbs {
		ip, err := netip.ParseAddr(s.InternalAddress)
		if err != nil {
			continue // reported on the host
		}
		if !subnet.Contains(ip.Unmap()) {
			v.errf(p+".address", "keepalived holds the VIP on the slb hosts' subnet: pick a free address there, or set spec.loadBalancer.vipPrefix",
				"VIP %s is outside %s, the subnet of slb host %q (%s)", vip, subnet, s.Name, s.InternalAddress)
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// cidr parses a network in CIDR form, reporting a problem at p.
func (v *checker) cidr(p, s string) (netip.Prefix, bool) {
	pr, err := netip.ParsePrefix(s)
	if err != nil {
		v.errf(p, "write a network as ADDRESS/BITS, e.g. 10.244.0.0/16", "%q is not a CIDR", s)
		return pr, false
	}
	if pr.Masked() != pr {
		v.errf(p, fmt.Sprintf("did you mean %s?", pr.Masked()), "%s has host bits set", s)
		return pr, false
	}
	return pr, true
}

func (v *checker) kubernetes() {
	kl := v.c.Spec.Kubernetes.Kubelet
	switch kl.CgroupDriver {
	case "", "systemd", "cgroupfs":
	default:
		v.errf("spec.kubernetes.kubelet.cgroupDriver", "use systemd (the default) or cgroupfs", "unknown cgroup driver %q", kl.CgroupDriver)
	}
	if kl.ImageGCHighThresholdPercent != 0 || kl.ImageGCLowThresholdPercent != 0 {
		if kl.ImageGCHighThresholdPercent < 0 || kl.ImageGCHighThresholdPercent > 100 || kl.ImageGCLowThresholdPercent < 0 || kl.ImageGCLowThresholdPercent >= kl.ImageGCHighThresholdPercent {
			v.errf("spec.kubernetes.kubelet.imageGCHighThresholdPercent", "set 0 <= low < high <= 100, e.g. 85 and 80", "image GC thresholds high %d / low %d are not valid", kl.ImageGCHighThresholdPercent, kl.ImageGCLowThresholdPercent)
		}
	}
	if kl.FailCgroupV1 != nil && !*kl.FailCgroupV1 && !slicesContainsFold(v.c.Spec.Preflight.IgnoreErrors, "SystemVerification") {
		v.warnf("spec.kubernetes.kubelet.failCgroupV1", "add SystemVerification to spec.preflight.ignoreErrors, or kubeadm's preflight will stop on a cgroup v1 host", "failCgroupV1 is false but kubeadm's SystemVerification check is not ignored")
	}
	k := v.c.Spec.Kubernetes
	const p = "spec.kubernetes"
	if !versionRE.MatchString(k.Version) {
		v.errf(p+".version", "write it like "+DefaultKubernetesVersion, "kubernetes version %q is not of the form vX.Y.Z", k.Version)
	}
	if !isDNSSubdomain(k.ClusterDomain) {
		v.errf(p+".clusterDomain", "a DNS name such as "+DefaultClusterDomain, "cluster domain %q is not a DNS name", k.ClusterDomain)
	}
	pod, podOK := v.cidr(p+".podCIDR", k.PodCIDR)
	svc, svcOK := v.cidr(p+".serviceCIDR", k.ServiceCIDR)
	if svcOK {
		// kube-apiserver refuses service ranges with more than 20 host bits.
		if hostBits := svc.Addr().BitLen() - svc.Bits(); hostBits > 20 {
			v.errf(p+".serviceCIDR", fmt.Sprintf("use /%d or a smaller range", svc.Addr().BitLen()-20), "service CIDR %s is too large: kube-apiserver allows at most 20 host bits", svc)
		}
	}
	if podOK {
		// kube-controller-manager gives each node a /24 (IPv4) or /64 (IPv6).
		nodeBits := 24
		if pod.Addr().Is6() {
			nodeBits = 64
		}
		nodes := len(v.c.Nodes())
		if pod.Bits() > nodeBits {
			v.errf(p+".podCIDR", fmt.Sprintf("use /%d or larger: each node gets a /%d", nodeBits, nodeBits), "pod CIDR %s is smaller than one node's range", pod)
		} else if free := nodeBits - pod.Bits(); free < 31 && 1<<free < nodes {
			v.errf(p+".podCIDR", fmt.Sprintf("each node gets a /%d; use a larger range", nodeBits), "pod CIDR %s has room for %d nodes, the inventory has %d", pod, 1<<free, nodes)
		}
	}
	if podOK && svcOK {
		if pod.Addr().Is4() != svc.Addr().Is4() {
			v.errf(p+".serviceCIDR", "use one IP family for both ranges", "pod CIDR %s and service CIDR %s are of different IP families", pod, svc)
		} else if pod.Overlaps(svc) {
			v.errf(p+".serviceCIDR", "pick ranges that do not overlap, e.g. "+DefaultPodCIDR+" and "+DefaultServiceCIDR, "service CIDR %s overlaps pod CIDR %s", svc, pod)
		}
	}
	for i, h := range v.c.Spec.Hosts {
		ip, err := netip.ParseAddr(h.InternalAddress)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		for _, r := range []struct {
			name, field string
			pr          netip.Prefix
			ok          bool
		}{{"pod CIDR", "podCIDR", pod, podOK}, {"service CIDR", "serviceCIDR", svc, svcOK}} {
			if r.ok && r.pr.Contains(ip) {
				v.errf(hostPath(i)+".internalAddress", "change spec.kubernetes."+r.field+" so it does not cover the hosts' network",
					"host address %s is inside the %s %s", ip, r.name, r.pr)
			}
		}
	}
}

func (v *checker) etcd() {
	e := v.c.Spec.Etcd
	if !versionRE.MatchString(e.Version) {
		v.errf("spec.etcd.version", "write it like "+DefaultEtcdVersion, "etcd version %q is not of the form vX.Y.Z", e.Version)
	}
	if !path.IsAbs(e.DataDir) {
		v.errf("spec.etcd.dataDir", "an absolute path such as "+DefaultEtcdDataDir, "etcd data dir %q is not an absolute path", e.DataDir)
	}
}

func (v *checker) network() {
	n := v.c.Spec.Network
	switch n.Plugin {
	case NetworkBridge:
		if n.Manifest != "" {
			v.warnf("spec.network.manifest", "set plugin: manifest to use it, or remove it", "manifest is ignored with plugin bridge")
		}
	case NetworkManifest:
		if n.Manifest == "" {
			v.errf("spec.network.manifest", "the path of a CNI manifest (YAML) to apply", "plugin manifest needs a manifest")
		}
	default:
		v.errf("spec.network.plugin", "bridge or manifest", "unknown network plugin %q", n.Plugin)
	}
}

func (v *checker) artifacts() {
	a, r := v.c.Spec.Artifacts, v.c.Spec.Registry
	switch a.Source {
	case "", ArtifactsUpstream, ArtifactsBuild:
	default:
		v.errf("spec.artifacts.source", "upstream (the projects' releases) or build (hack/build-artifacts/build.sh's cache)", "unknown artifact source %q", a.Source)
	}
	if a.Source != "" && (a.Dir != "" || a.Manifest != "") {
		v.errf("spec.artifacts.source", "remove source, or dir and manifest", "source %q is ignored when dir or manifest is set", a.Source)
	}
	if a.Bundle != "" && (a.Source != "" || a.Dir != "" || a.Manifest != "" || len(a.Mirrors) > 0) {
		v.errf("spec.artifacts.bundle", "a bundle holds every artifact: remove source, dir, manifest and mirrors, or the bundle",
			"bundle %q is the only source of artifacts; source, dir, manifest and mirrors must be unset", a.Bundle)
	}
	for from, to := range a.Mirrors {
		for _, u := range []string{from, to} {
			if !isHTTPURL(u) {
				v.errf("spec.artifacts.mirrors", "map a base URL to a base URL, e.g. https://dl.k8s.io: http://mirror.example/dl.k8s.io", "mirror %q → %q: %q is not an http(s) URL", from, to, u)
			}
		}
	}
	switch r.Pull {
	case "", PullBastion:
	case PullNodes:
		if a.Source == ArtifactsBuild || a.Dir != "" || a.Manifest != "" || a.Bundle != "" {
			v.errf("spec.registry.pull", "nodes pulls images from registries: use it with the upstream source (no artifacts source, dir, manifest or bundle)",
				"pull: nodes, but the images come from local files")
		}
	default:
		v.errf("spec.registry.pull", "bastion (the default) or nodes", "unknown pull %q", r.Pull)
	}
	for server, file := range r.CA {
		if server == "" || strings.ContainsAny(server, "/ '\"") {
			v.errf("spec.registry.ca", "a server as in its URL, host or host:port, e.g. registry.example.com:5000", "%q is not a host[:port]", server)
		}
		if file == "" {
			v.errf("spec.registry.ca", "the path of a PEM file on the bastion", "no CA file for %s", server)
		}
	}
	for reg, ms := range r.Mirrors {
		if reg == "" || strings.ContainsAny(reg, "/ ") {
			v.errf("spec.registry.mirrors", "a registry host, e.g. registry.k8s.io", "registry %q is not a host name", reg)
		}
		for _, m := range ms {
			if u, err := url.Parse(m); !isHTTPURL(m) || err != nil || strings.Trim(u.Path, "/") != "" {
				v.errf("spec.registry.mirrors", "https://host[:port], or http://host[:port] for a registry without TLS, with no path", "mirror %q of %s is not an http(s) URL of a registry", m, reg)
			}
		}
	}
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (v *checker) certificates() {
	cs := v.c.Spec.Certificates
	const p = "spec.certificates"
	ok := true
	if cs.Validity.Duration <= 0 {
		v.errf(p+".validity", "a positive duration such as 8760h (one year)", "certificate validity %s is not positive", cs.Validity)
		ok = false
	}
	if cs.CAValidity.Duration <= 0 {
		v.errf(p+".caValidity", "a positive duration such as 87600h (ten years)", "CA validity %s is not positive", cs.CAValidity)
		ok = false
	}
	if ok && cs.Validity.Duration > cs.CAValidity.Duration {
		v.errf(p+".validity", "a certificate cannot outlive its CA: shorten validity or lengthen caValidity",
			"certificate validity %s is longer than the CA validity %s", cs.Validity, cs.CAValidity)
	}
}

func (v *checker) preflight() {
	for i, name := range v.c.Spec.Preflight.IgnoreErrors {
		p := itemPath("spec.preflight.ignoreErrors", i)
		parts := strings.Split(name, ",")
		for _, part := range parts {
			if strings.EqualFold(strings.TrimSpace(part), "all") {
				v.errf(p, "list the kubeadm checks to ignore by name, e.g. SystemVerification", "ignoring all preflight errors is refused")
				return
			}
		}
		switch {
		case strings.TrimSpace(name) == "":
			v.errf(p, "remove the empty entry", "empty preflight check name")
		case len(parts) > 1:
			v.errf(p, "write one check per list item", "%q names several checks", name)
		}
	}
}

func slicesContainsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (v *checker) stateBackup() {
	seen := map[string]bool{}
	for i, t := range v.c.Spec.StateBackup.Targets {
		p := fmt.Sprintf("spec.stateBackup.targets[%d]", i)
		if v.c.Host(t.Host) == nil {
			v.errf(p+".host", "name one of spec.hosts", "%q is not a host of the inventory", t.Host)
		}
		if seen[t.Host] {
			v.errf(p+".host", "list each host once", "%q is listed twice", t.Host)
		}
		seen[t.Host] = true
		if t.Every.Duration < time.Minute {
			v.errf(p+".every", "at least 1m, e.g. 2m or 1h", "every %s is under a minute", t.Every)
		}
		if t.Keep < 1 {
			v.errf(p+".keep", "keep at least 1 copy", "keep %d", t.Keep)
		}
	}
}
