package templates

import (
	"net/netip"
	"time"
)

// KeepalivedCheckPath is where KeepalivedCheck's script goes; the rendered
// keepalived.conf runs it. It must be owned by root and not writable by
// others (enable_script_security).
const KeepalivedCheckPath = "/etc/keepalived/check_haproxy.sh"

// KeepalivedInput is one slb host's keepalived configuration: one VRRP
// instance holding the VIP, tracking HAProxy with KeepalivedCheckPath.
//
// Every host starts in state BACKUP and the highest priority wins the first
// election. With Preempt false (the default) the instance is `nopreempt`: once
// the VIP has moved away from a failed host it stays where it is when that
// host returns, so a flapping host costs one failover instead of two, and the
// client connections through the VIP are cut once. Set Preempt to pin the VIP
// to the highest priority host whenever it is healthy.
type KeepalivedInput struct {
	// RouterID is global_defs router_id: the host name.
	RouterID string
	// Interface carries the VIP and the VRRP adverts, e.g. "eth0".
	Interface string
	// VirtualRouterID is the VRRP id, 1-255, the same on every slb host and
	// unique on the network segment.
	VirtualRouterID int
	// Priority of this host, 1-254, distinct per host; see
	// KeepalivedPriority.
	Priority int
	// Preempt: see the type's comment. Default false (nopreempt).
	Preempt bool
	// UnicastSrcIP is this host's address; UnicastPeers are the other slb
	// hosts' addresses. Adverts go only to them (no multicast), which also
	// limits who can speak VRRP to this instance. With no peers (a single
	// slb host) both are left out of the file: keepalived deprecates unicast
	// keywords without peers.
	UnicastSrcIP string
	UnicastPeers []string
	// VIP and VIPPrefix: the virtual address and the prefix length of its
	// subnet, e.g. 10.77.0.100 and 24.
	VIP       string
	VIPPrefix int
	// VRRPVersion is 2 (default) or 3. Version 2 authenticates adverts with
	// AuthPass but its AdvertInterval is whole seconds (failover ~3-4 s in the
	// lab). Version 3 allows sub-second adverts (failover ~1 s with 200ms)
	// but keepalived refuses an authentication block with it: AuthPass must
	// be empty and only the unicast peer list guards the instance.
	VRRPVersion int
	// AdvertInterval between VRRP adverts; default 1s. Whole seconds with
	// version 2; a multiple of 10ms with version 3.
	AdvertInterval time.Duration
	// AuthPass is the VRRPv2 PASS secret: 1-8 characters from [A-Za-z0-9._-].
	// Required with version 2, forbidden with version 3.
	AuthPass string
	// Check tunes how often KeepalivedCheckPath runs.
	Check ScriptCheck
}

// ScriptCheck tunes a keepalived vrrp_script.
type ScriptCheck struct {
	// Interval between runs; default 1s. Whole seconds: keepalived 2.2
	// rejects fractions here (a crashed VIP holder is noticed through missing
	// adverts anyway, see AdvertInterval).
	Interval time.Duration
	// Fall is how many failures put the instance in FAULT (VIP released);
	// default 2. Rise is how many successes bring it back; default 2.
	Fall int
	Rise int
}

// KeepalivedPriority returns the priority for the i-th slb host (0-based, in
// inventory order): 150, 140, 130, ... down to a floor of 50, so the first
// host wins the first election.
func KeepalivedPriority(i int) int {
	return max(150-10*i, 50)
}

// Keepalived renders /etc/keepalived/keepalived.conf.
func Keepalived(in KeepalivedInput) ([]byte, error) {
	p := problems{what: "keepalived.conf"}
	p.name("RouterID", in.RouterID)
	p.name("Interface", in.Interface)
	if in.VirtualRouterID < 1 || in.VirtualRouterID > 255 {
		p.add("VirtualRouterID: %d is outside 1-255", in.VirtualRouterID)
	}
	if in.Priority < 1 || in.Priority > 254 {
		p.add("Priority: %d is outside 1-254", in.Priority)
	}
	p.ip("UnicastSrcIP", in.UnicastSrcIP)
	for i, peer := range in.UnicastPeers {
		p.ip("UnicastPeers["+itoa(i)+"]", peer)
		if peer == in.UnicastSrcIP {
			p.add("UnicastPeers[%d]: %s is this host's own UnicastSrcIP", i, peer)
		}
	}
	p.ip("VIP", in.VIP)
	if a, err := netip.ParseAddr(in.VIP); err == nil {
		if in.VIPPrefix < 1 || in.VIPPrefix > a.BitLen() {
			p.add("VIPPrefix: %d is outside 1-%d", in.VIPPrefix, a.BitLen())
		}
	}
	version := orDefault(in.VRRPVersion, 2)
	advert := orDefault(in.AdvertInterval, time.Second)
	if a, err := netip.ParseAddr(in.VIP); err == nil && a.Is6() && version != 3 {
		p.add("VRRPVersion: an IPv6 VIP needs VRRP version 3")
	}
	switch version {
	case 2:
		if advert%time.Second != 0 || advert > 255*time.Second {
			p.add("AdvertInterval: %s must be whole seconds (1-255s) with VRRP version 2; use version 3 for sub-second adverts", advert)
		}
		if l := len(in.AuthPass); l < 1 || l > 8 {
			p.add("AuthPass: VRRP version 2 needs a password of 1-8 characters (got %d)", l)
		} else if !isName(in.AuthPass) {
			// The value is a secret: never echo it.
			p.add("AuthPass: may hold only letters, digits, '.', '-' and '_'")
		}
	case 3:
		if advert%(10*time.Millisecond) != 0 || advert < 10*time.Millisecond || advert > 40*time.Second {
			p.add("AdvertInterval: %s must be a multiple of 10ms between 10ms and 40s with VRRP version 3", advert)
		}
		if in.AuthPass != "" {
			p.add("AuthPass: keepalived accepts no authentication with VRRP version 3; leave it empty")
		}
	default:
		p.add("VRRPVersion: %d is neither 2 nor 3", in.VRRPVersion)
	}
	chk := in.Check
	chk.Interval = orDefault(chk.Interval, time.Second)
	chk.Fall = orDefault(chk.Fall, 2)
	chk.Rise = orDefault(chk.Rise, 2)
	if chk.Interval < time.Second || chk.Interval%time.Second != 0 {
		p.add("Check.Interval: %s must be whole seconds, at least 1s (keepalived accepts no fractions here)", chk.Interval)
	}
	if chk.Fall < 1 || chk.Rise < 1 {
		p.add("Check.Fall and Check.Rise must be at least 1 (got %d, %d)", chk.Fall, chk.Rise)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return render("keepalived.conf.tmpl", map[string]any{
		"RouterID":        in.RouterID,
		"Interface":       in.Interface,
		"VirtualRouterID": in.VirtualRouterID,
		"Priority":        in.Priority,
		"Preempt":         in.Preempt,
		"UnicastSrcIP":    in.UnicastSrcIP,
		"UnicastPeers":    in.UnicastPeers,
		"VIP":             in.VIP,
		"VIPPrefix":       in.VIPPrefix,
		"VRRPVersion":     version,
		"Advert":          formatSeconds(advert),
		"AuthPass":        in.AuthPass,
		"Script":          KeepalivedCheckPath,
		"CheckInterval":   formatSeconds(chk.Interval),
		"CheckFall":       chk.Fall,
		"CheckRise":       chk.Rise,
	})
}

// KeepalivedCheckInput configures the check script.
type KeepalivedCheckInput struct {
	// ProbeAddress, when set, is an "IP:port" on this host that the script
	// also opens a TCP connection to (HAProxyInput.StatsAddress): it catches a
	// HAProxy process that runs but does not serve. Empty: process check only.
	ProbeAddress string
}

// KeepalivedCheck renders KeepalivedCheckPath (mode 0755, owner root). It
// finds HAProxy with `pgrep -x haproxy`: pidof is killall5 on Debian and fails
// ("only one argument") inside some containers.
func KeepalivedCheck(in KeepalivedCheckInput) ([]byte, error) {
	p := problems{what: "check_haproxy.sh"}
	host, port := p.optionalAddrPort("ProbeAddress", in.ProbeAddress)
	if err := p.err(); err != nil {
		return nil, err
	}
	return render("check_haproxy.sh.tmpl", map[string]any{
		"Probe":     in.ProbeAddress != "",
		"ProbeHost": host,
		"ProbePort": port,
	})
}
