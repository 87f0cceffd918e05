package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k4t.io/k4t/pkg/transport"
)

// UnitState is what systemd says of a unit.
type UnitState struct {
	Enabled, Active bool
	Since           string // ActiveEnterTimestamp
}

// GetUnitState asks systemd about unit in one command.
func GetUnitState(ctx context.Context, h transport.Host, unit string) (UnitState, error) {
	res, err := h.Run(ctx, transport.Cmd{Command: fmt.Sprintf("systemctl is-enabled %[1]s; systemctl is-active %[1]s; systemctl show -p ActiveEnterTimestamp --value %[1]s; true", unit), ReadOnly: true})
	if err != nil {
		return UnitState{}, err
	}
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	for len(lines) < 3 {
		lines = append(lines, "")
	}
	return UnitState{Enabled: lines[0] == "enabled", Active: lines[1] == "active", Since: lines[2]}, nil
}

// Unit says what a phase wants of a systemd unit.
type Unit struct {
	Name string
	// UnitFileChanged: daemon-reload first. ConfigChanged: restart (or
	// reload) if it runs.
	UnitFileChanged, ConfigChanged bool
	// Reload instead of restart on a config change (haproxy, keepalived).
	Reload bool
	// NoBlock starts without waiting for readiness (etcd members that need
	// each other); the phase's Check waits for health instead.
	NoBlock bool
}

// UnitChanges returns what makes a unit enabled and running: daemon-reload
// when its unit file changed, enable, start — or restart/reload (journaled)
// when it runs and its configuration changed in this plan.
func UnitChanges(ctx context.Context, hc *HostCtx, u Unit) ([]*Change, error) {
	unit, unitFileChanged, configChanged := u.Name, u.UnitFileChanged, u.ConfigChanged
	st, err := GetUnitState(ctx, hc.Conn, unit)
	if err != nil {
		return nil, err
	}
	var out []*Change
	if unitFileChanged {
		out = append(out, CommandChange(hc, "", "systemctl daemon-reload", "systemctl daemon-reload"))
	}
	if !st.Enabled {
		out = append(out, &Change{Host: hc.Name(), Kind: KindUnit, Desc: "enable " + unit, Key: "enable:" + unit,
			Apply: func(ctx context.Context, h transport.Host) error {
				_, err := h.Run(ctx, transport.Cmd{Command: "systemctl enable " + unit})
				return err
			}})
	}
	switch {
	case !st.Active:
		c := restartChange(hc, unit, "restart", u.NoBlock)
		c.Desc = "start " + unit
		out = append(out, c)
	case configChanged || unitFileChanged:
		verb := "restart"
		if u.Reload && !unitFileChanged {
			verb = "reload"
		}
		out = append(out, restartChange(hc, unit, verb, u.NoBlock))
	}
	return out, nil
}

func restartChange(hc *HostCtx, unit, verb string, noBlock bool) *Change {
	cmd := "systemctl " + verb + " " + unit
	if noBlock {
		cmd = "systemctl " + verb + " --no-block " + unit
	}
	return &Change{Host: hc.Name(), Kind: KindUnit, Desc: verb + " " + unit, Key: "restart:" + unit, Journaled: true,
		Apply: func(ctx context.Context, h transport.Host) error {
			_, err := h.Run(ctx, transport.Cmd{Command: cmd})
			if err != nil {
				return unitError(ctx, h, unit, verb, err)
			}
			return nil
		}}
}

// unitError adds the unit's last journal lines to a failed start, so the
// error says why without a second trip to the host.
func unitError(ctx context.Context, h transport.Host, unit, verb string, err error) error {
	res, jerr := h.Run(context.WithoutCancel(ctx), transport.Cmd{Command: "journalctl -u " + unit + " -n 6 --no-pager -o cat", Timeout: 10 * time.Second})
	if jerr != nil || len(res.Stdout) == 0 {
		return err
	}
	return fmt.Errorf("%s failed to %s; its journal ends with:\n%s\n(more: journalctl -u %s on %s)", unit, verb, Indent(string(res.Stdout)), unit, h.Name())
}

func Indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// RestartChange restarts unit; journaled so that a run killed between a
// config upload and this restart still restarts it next time.
func RestartChange(hc *HostCtx, unit string) *Change {
	return restartChange(hc, unit, "restart", false)
}
