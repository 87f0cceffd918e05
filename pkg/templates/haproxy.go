package templates

import (
	"time"
)

// HAProxyInput is one slb host's HAProxy configuration: a TCP frontend on the
// VIP forwarding to every kube-apiserver, health-checked over HTTPS.
type HAProxyInput struct {
	// FrontendAddress is the address HAProxy binds, normally the VIP. On the
	// host that does not hold the VIP this needs net.ipv4.ip_nonlocal_bind=1
	// (see SysctlInput.NonLocalBind).
	FrontendAddress string
	// FrontendPort is the port clients use; default 6443.
	FrontendPort int
	// Backends are the kube-apiservers, one per master; at least one.
	Backends []Backend
	// Check tunes the backend health check.
	Check HealthCheck
	// StatsAddress, when set (e.g. "127.0.0.1:8404"), adds an HTTP frontend
	// there serving /healthz (200 while HAProxy runs) and /stats. Keep it on
	// loopback: the keepalived check script probes it.
	StatsAddress string
}

// Backend is one server behind a load balancer.
type Backend struct {
	Name    string // e.g. "master1"
	Address string // IP
	Port    int    // default 6443
}

// HealthCheck tunes HAProxy's HTTPS health check of kube-apiserver.
type HealthCheck struct {
	// Path is requested with GET; kube-apiserver answers /readyz to anonymous
	// clients by default. Default "/readyz".
	Path string
	// Interval between checks; default 1s (a master is out after Fall *
	// Interval). The lab ran 200ms; each check is a TLS handshake per master.
	Interval time.Duration
	// Fall is how many failed checks mark a server down; default 2.
	Fall int
	// Rise is how many good checks mark it up again; default 2.
	Rise int
}

// Defaults for HAProxyInput.
const (
	DefaultAPIServerPort    = 6443
	DefaultHealthCheckPath  = "/readyz"
	DefaultHealthCheckEvery = time.Second
)

// HAProxy renders /etc/haproxy/haproxy.cfg.
func HAProxy(in HAProxyInput) ([]byte, error) {
	p := problems{what: "haproxy.cfg"}
	p.ip("FrontendAddress", in.FrontendAddress)
	port := orDefault(in.FrontendPort, DefaultAPIServerPort)
	p.port("FrontendPort", port)
	if len(in.Backends) == 0 {
		p.add("Backends: need at least one kube-apiserver (zero masters?)")
	}
	seen := map[string]bool{}
	backends := make([]Backend, 0, len(in.Backends))
	for i, b := range in.Backends {
		p.name("Backends["+itoa(i)+"].Name", b.Name)
		if seen[b.Name] {
			p.add("Backends[%d].Name: %q appears twice", i, b.Name)
		}
		seen[b.Name] = true
		p.ip("Backends["+itoa(i)+"].Address", b.Address)
		b.Port = orDefault(b.Port, DefaultAPIServerPort)
		p.port("Backends["+itoa(i)+"].Port", b.Port)
		backends = append(backends, b)
	}
	chk := in.Check
	chk.Path = orDefault(chk.Path, DefaultHealthCheckPath)
	chk.Interval = orDefault(chk.Interval, DefaultHealthCheckEvery)
	chk.Fall = orDefault(chk.Fall, 2)
	chk.Rise = orDefault(chk.Rise, 2)
	if chk.Path[0] != '/' || containsSpace(chk.Path) {
		p.add("Check.Path: %q must start with '/' and hold no spaces", chk.Path)
	}
	if chk.Interval < time.Millisecond {
		p.add("Check.Interval: %s is below 1ms", chk.Interval)
	}
	if chk.Fall < 1 || chk.Rise < 1 {
		p.add("Check.Fall and Check.Rise must be at least 1 (got %d, %d)", chk.Fall, chk.Rise)
	}
	statsHost, statsPort := p.optionalAddrPort("StatsAddress", in.StatsAddress)
	if err := p.err(); err != nil {
		return nil, err
	}
	return render("haproxy.cfg.tmpl", map[string]any{
		"FrontendAddress": in.FrontendAddress,
		"FrontendPort":    port,
		"Backends":        backends,
		"CheckPath":       chk.Path,
		"CheckInter":      formatMillis(chk.Interval),
		"CheckFall":       chk.Fall,
		"CheckRise":       chk.Rise,
		"Stats":           in.StatsAddress != "",
		"StatsHost":       statsHost,
		"StatsPort":       statsPort,
	})
}
