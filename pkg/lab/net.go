package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// link reports whether a network link exists, and its alias if it is a bridge.
func link(name string) (exists bool, bridgeAlias string) {
	dir := filepath.Join("/sys/class/net", name)
	if _, err := os.Stat(dir); err != nil {
		return false, ""
	}
	if _, err := os.Stat(filepath.Join(dir, "bridge")); err != nil {
		return true, ""
	}
	alias, _ := os.ReadFile(filepath.Join(dir, "ifalias"))
	return true, strings.TrimSpace(string(alias))
}

// bridgeMembers lists the links attached to bridge.
func bridgeMembers(bridge string) []string {
	ents, _ := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// checkNetwork refuses a bridge name or subnet that something else uses.
func (l *Lab) checkNetwork() error {
	if exists, alias := link(l.Bridge); exists && alias != l.bridgeAlias() {
		if dir, ok := strings.CutPrefix(alias, bridgeAliasPrefix); ok {
			return fmt.Errorf("lab: bridge %s belongs to the lab in %s; take that one down first with `k4t lab down --dir %s`", l.Bridge, dir, dir)
		}
		return fmt.Errorf("lab: network link %s exists and was not made by k4t lab (its alias is not %q); choose another bridge or remove it with `ip link del %s` if it is a leftover", l.Bridge, l.bridgeAlias(), l.Bridge)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("lab: listing interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Name == l.Bridge {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			if p.Overlaps(l.Subnet) {
				return fmt.Errorf("lab: %s on %s overlaps the lab subnet %s; the lab needs that subnet for itself", p, ifc.Name, l.Subnet)
			}
		}
	}
	return nil
}

// createBridge makes the bridge with the gateway address, marks it ours and
// turns multicast snooping off (VRRP multicast between hosts).
func (l *Lab) createBridge(ctx context.Context) error {
	gw := fmt.Sprintf("%s/%d", GatewayAddr(l.Subnet), l.Subnet.Bits())
	if exists, _ := link(l.Bridge); !exists {
		if err := run(ctx, "", "ip", "link", "add", l.Bridge, "type", "bridge"); err != nil {
			return fmt.Errorf("lab: creating bridge: %w", err)
		}
	}
	steps := [][]string{
		{"link", "set", l.Bridge, "alias", l.bridgeAlias()},
		{"addr", "replace", gw, "dev", l.Bridge},
		{"link", "set", l.Bridge, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, "", "ip", s...); err != nil {
			return fmt.Errorf("lab: bridge %s: %w", l.Bridge, err)
		}
	}
	p := filepath.Join("/sys/class/net", l.Bridge, "bridge", "multicast_snooping")
	if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
		return fmt.Errorf("lab: turning multicast snooping off (%s): %w", p, err)
	}
	return nil
}

// iptablesRules returns delete commands for every iptables/ip6tables rule
// that names the bridge. systemd-nspawn --network-bridge adds none (checked
// on the project's machine); this finds any that something else added for it.
func iptablesRules(ctx context.Context, bridge string) [][]string {
	var out [][]string
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool + "-save"); err != nil {
			continue
		}
		dump, err := output(ctx, "", tool+"-save")
		if err != nil {
			continue
		}
		out = append(out, ruleDeletes(tool, dump, bridge)...)
	}
	return out
}

// ruleDeletes turns the "-A" lines of an iptables-save dump that mention
// bridge into "tool -t TABLE -D ..." argument lists.
func ruleDeletes(tool, dump, bridge string) [][]string {
	var out [][]string
	table := ""
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, "*") {
			table = strings.TrimPrefix(line, "*")
			continue
		}
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		fs := strings.Fields(line)
		mention := false
		for _, f := range fs {
			if f == bridge || f == bridge+"+" {
				mention = true
			}
		}
		if !mention || strings.Contains(line, `"`) {
			continue
		}
		out = append(out, append([]string{tool, "-t", table, "-D"}, fs[1:]...))
	}
	return out
}
