// Package templates renders every file k4t writes onto a host.
//
// Each file is an embedded text/template (files/*.tmpl, parsed with
// missingkey=error) behind a typed render function that validates its input
// first; kubeadm configs are built from the real kubeadm v1beta4, kubelet
// v1beta1 and kube-proxy v1alpha1 types instead. The package knows nothing of
// SSH, phases or the inventory: it defines its own small input structs and the
// phases map the inventory onto them. Render functions are pure and
// deterministic: equal inputs give byte-equal outputs, so a phase can compare
// sha256 sums with what a host holds.
//
// Where each rendering goes on a host, and its mode:
//
//	HAProxy           /etc/haproxy/haproxy.cfg                          0644
//	Keepalived        /etc/keepalived/keepalived.conf                   0600 (VRRP password)
//	KeepalivedCheck   KeepalivedCheckPath                               0755, owner root
//	EtcdUnit          /etc/systemd/system/etcd.service                  0644
//	EtcdEnv           EtcdEnvPath                                       0644 (paths only)
//	SysctlConf        SysctlPath                                        0644
//	ContainerdConfig  ContainerdConfigPath                              0644
//	ContainerdUnit    /etc/systemd/system/containerd.service            0644
//	RegistryHosts     RegistryHostsDir/<registry>/hosts.toml            0644
//	KubeletUnit       KubeletUnitPath                                   0644
//	KubeletDropIn     KubeletDropInPath                                 0644
//	BridgeCNI         BridgeCNIPath                                     0644
//	PodRoutes         /etc/k4t/pod-routes 0644; PodRoutesService /etc/systemd/system/k4t-pod-routes.service 0644
//	KubeadmInit/Join  e.g. /etc/kubernetes/k4t/kubeadm-*.yaml           0600 (bootstrap token)
//
// Golden files: `go test ./pkg/templates -update` rewrites testdata/golden/*.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed files/*.tmpl
var files embed.FS

// parsed holds every template, parsed once at init; a template that does not
// parse is a programming error caught by any test.
var parsed = template.Must(template.New("").
	Option("missingkey=error").
	Funcs(template.FuncMap{
		"seconds":  formatSeconds,
		"join":     strings.Join,
		"quote":    strconv.Quote,
		"hostport": joinHostPort,
	}).
	ParseFS(files, "files/*.tmpl"))

// render executes the named embedded template with data.
func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := parsed.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// joinHostPort joins a validated IP and a port, bracketing IPv6 ("[fd00::1]:6443").
func joinHostPort(addr string, port any) string {
	return net.JoinHostPort(addr, fmt.Sprint(port))
}

// formatSeconds writes d as seconds with up to three decimals and no trailing
// zeros ("1", "0.2", "1.5"), the form keepalived reads.
func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// formatMillis writes d as an HAProxy time: "200ms", or "2s" when whole
// seconds.
func formatMillis(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// problems collects every validation problem of one input so a user sees them
// all at once.
type problems struct {
	what string
	errs []error
}

func (p *problems) add(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}

func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: invalid input: %w", p.what, errors.Join(p.errs...))
}

// ip checks that s is a plain IP address (no zone, no prefix).
func (p *problems) ip(field, s string) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		p.add("%s: %q is not an IP address", field, s)
	}
}

// prefix checks that s is a CIDR in canonical form (host bits zero).
func (p *problems) prefix(field, s string) {
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		p.add("%s: %q is not a CIDR", field, s)
		return
	}
	if pf.Masked() != pf {
		p.add("%s: %q has host bits set (did you mean %s?)", field, s, pf.Masked())
	}
}

func (p *problems) port(field string, n int) {
	if n < 1 || n > 65535 {
		p.add("%s: %d is not a port (1-65535)", field, n)
	}
}

func (p *problems) absPath(field, s string) {
	if !strings.HasPrefix(s, "/") {
		p.add("%s: %q is not an absolute path", field, s)
	}
}

// name checks that s is a non-empty word safe to put unquoted into a config
// file (letters, digits, '.', '-', '_').
func (p *problems) name(field, s string) {
	if s == "" {
		p.add("%s: must not be empty", field)
	} else if !isName(s) {
		p.add("%s: %q may hold only letters, digits, '.', '-' and '_'", field, s)
	}
}

func isName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func itoa(i int) string { return strconv.Itoa(i) }

func containsSpace(s string) bool { return strings.ContainsAny(s, " \t\r\n") }

// optionalAddrPort splits an optional "IP:port"; empty gives empty halves.
func (p *problems) optionalAddrPort(field, s string) (host, port string) {
	if s == "" {
		return "", ""
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		p.add("%s: %q is not IP:port", field, s)
		return "", ""
	}
	return ap.Addr().String(), strconv.Itoa(int(ap.Port()))
}

func containsQuote(s string) bool { return strings.ContainsAny(s, "\"'\\") }
