// Package lab runs N real hosts on this machine: each one a systemd-nspawn
// --boot container with an overlay root (shared debootstrapped bookworm lower,
// per-host upper), a veth on the bridge k4tlab0 (10.77.0.1/24, hosts from .11),
// systemd inside and sshd with root login by key and by password. It is test
// infrastructure: k4t is run against the lab the way a user runs it against
// machines. The recipe and the reasons for each flag are in docs/lab.md.
//
// All state lives in plain files in the work dir, so `down` and `status` work
// from a new process and after a killed run; Cleanup removes whatever an
// earlier run left (processes, mounts, cgroups, links, sysctls).
package lab

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Defaults of a Lab.
const (
	DefaultDir    = "/var/lib/k4t-lab"
	DefaultBridge = "k4tlab0"
	DefaultSubnet = "10.77.0.0/24"
	// DefaultVIP is the control plane VIP written to inventories.
	DefaultVIP = "10.77.0.100"
	// FirstHost is the last octet (offset in the subnet) of the first host.
	FirstHost = 11
	// bridgeAliasPrefix + the work dir is the bridge's alias (ip link ...
	// alias): it marks the bridge as made by the lab in that dir.
	bridgeAliasPrefix = "k4t-lab "
)

// Lab is a set of nspawn hosts rooted at a work dir.
type Lab struct {
	// Dir is the work dir: state, keys, per-host layers, logs.
	Dir string
	// CacheDir holds base tarballs (kept by Down).
	CacheDir string
	// Bridge is the bridge hosts attach to; Subnet its network. The bridge
	// takes the first address, hosts FirstHost and up.
	Bridge string
	Subnet netip.Prefix
	// VIP is the controlPlaneEndpoint written by WriteInventory.
	VIP string
	// CgroupName is the directory created under the current cgroup in every
	// hierarchy; each host gets CgroupName/<host>. Cleanup removes every
	// directory of that name, so labs sharing a machine need distinct
	// Bridge, Subnet and CgroupName (as the package's own e2e test does).
	CgroupName string
	// Mirror overrides the Debian mirror (default: K4T_LAB_MIRROR or apt sources).
	Mirror string
	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger
}

// New returns a Lab with the defaults, rooted at dir ("" means DefaultDir).
func New(dir string) *Lab {
	if dir == "" {
		dir = DefaultDir
	}
	return &Lab{
		Dir:        dir,
		CacheDir:   DefaultCacheDir,
		Bridge:     DefaultBridge,
		Subnet:     netip.MustParsePrefix(DefaultSubnet),
		VIP:        DefaultVIP,
		CgroupName: "k4t-lab",
	}
}

func (l *Lab) log() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}

// Host is one lab host as recorded in the state file.
type Host struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// state is lab.json in the work dir.
type state struct {
	Bridge string `json:"bridge"`
	Hosts  []Host `json:"hosts"`
}

// Paths in the work dir.
func (l *Lab) bridgeAlias() string        { return bridgeAliasPrefix + filepath.Clean(l.Dir) }
func (l *Lab) statePath() string          { return filepath.Join(l.Dir, "lab.json") }
func (l *Lab) hostDir(name string) string { return filepath.Join(l.Dir, "hosts", name) }
func (l *Lab) rootDir(name string) string { return filepath.Join(l.hostDir(name), "root") }
func (l *Lab) sysctlPath() string         { return filepath.Join(l.Dir, "sysctl.saved") }
func (l *Lab) spawnScript() string        { return filepath.Join(l.Dir, "spawn.sh") }
func (l *Lab) passwordPath() string       { return filepath.Join(l.Dir, "root-password") }

// KeyFile is the lab's private ssh key (ed25519, no passphrase); root on every
// host accepts it.
func (l *Lab) KeyFile() string { return filepath.Join(l.Dir, "id_ed25519") }

// KnownHostsFile lists every host's keys under its address and name.
func (l *Lab) KnownHostsFile() string { return filepath.Join(l.Dir, "known_hosts") }

// InventoryPath is where `k4t lab up` writes the inventory by default.
func (l *Lab) InventoryPath() string { return filepath.Join(l.Dir, "hosts.yaml") }

// Password is root's password on every host (random per lab, kept 0600 in
// the work dir). Tests use it for the password auth path.
func (l *Lab) Password() (string, error) {
	b, err := os.ReadFile(l.passwordPath())
	if err != nil {
		return "", fmt.Errorf("lab: reading root password: %w (is the lab up? run `k4t lab up`)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Hosts returns the hosts of the lab as recorded by Up, in order.
func (l *Lab) Hosts() ([]Host, error) {
	st, err := l.loadState()
	if err != nil {
		return nil, err
	}
	return st.Hosts, nil
}

func (l *Lab) host(name string) (Host, error) {
	hs, err := l.Hosts()
	if err != nil {
		return Host{}, err
	}
	for _, h := range hs {
		if h.Name == name {
			return h, nil
		}
	}
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return Host{}, fmt.Errorf("lab: no host %q (hosts: %s)", name, strings.Join(names, ", "))
}

func (l *Lab) loadState() (*state, error) {
	b, err := os.ReadFile(l.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab: no lab in %s (run `k4t lab up --hosts ...`)", l.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab: %s is damaged (%v); run `k4t lab down` to clean up", l.statePath(), err)
	}
	return &st, nil
}

func (l *Lab) saveState(st *state) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	return writeFileAtomic(l.statePath(), append(b, '\n'), 0o644)
}

// hostNameRE is what a lab host may be called: a DNS label, short enough for
// nspawn's veth name.
var hostNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,11}$`)

// AllocateHosts gives each name an address, in order: the subnet's
// FirstHost-th address, then the next ones.
func AllocateHosts(subnet netip.Prefix, names []string) ([]Host, error) {
	if len(names) == 0 {
		return nil, errors.New("lab: no hosts given (e.g. --hosts slb1,master1,worker1)")
	}
	if !subnet.Addr().Is4() {
		return nil, fmt.Errorf("lab: subnet %s must be IPv4", subnet)
	}
	seen := map[string]bool{}
	addr := subnet.Masked().Addr()
	for i := 0; i < FirstHost; i++ {
		addr = addr.Next()
	}
	out := make([]Host, 0, len(names))
	for _, n := range names {
		if !hostNameRE.MatchString(n) {
			return nil, fmt.Errorf("lab: host name %q: use lower-case letters, digits and '-', starting with a letter, at most 12 characters", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("lab: host %q given twice", n)
		}
		seen[n] = true
		if !subnet.Contains(addr) || addr == lastAddr(subnet) {
			return nil, fmt.Errorf("lab: %d hosts do not fit in %s from .%d", len(names), subnet, FirstHost)
		}
		out = append(out, Host{Name: n, Address: addr.String()})
		addr = addr.Next()
	}
	return out, nil
}

// GatewayAddr is the bridge's address: the subnet's first host address.
func GatewayAddr(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := 0; i < 32-bits; i++ {
		a[3-i/8] |= 1 << (i % 8)
	}
	return netip.AddrFrom4(a)
}

// randomPassword returns n characters from [A-Za-z0-9].
func randomPassword(n int) (string, error) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", err
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", b), nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
