package phases

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Taking a master out of HAProxy and putting it back, for every command that
// takes a master out of service (certs renew now; upgrade and node delete
// next). The "out" is journaled before it happens and marked done only when
// the master is back in, so a run killed in between leaves an intent that
// the next run of the command finishes (FinishInterrupted): no master stays
// out of the load balancer because k4t died.

// lbOutKey is the journal key of "master out of HAProxy".
func lbOutKey(m string) string { return "haproxy-out:" + m }

// HAProxyOut takes master m out of HAProxy on every slb host.
func HAProxyOut(ctx context.Context, r *engine.Run, phase string, m *v1alpha1.Host) error {
	if len(r.Cluster.SLBs()) == 0 {
		return nil
	}
	if err := r.Journal.Record(m.Name, phase, state.Intent, lbOutKey(m.Name), "out of HAProxy"); err != nil {
		return err
	}
	return haproxyServer(ctx, r, phase, m.Name, "disable")
}

// HAProxyIn puts master m back into HAProxy on every slb host and records
// that it is back.
func HAProxyIn(ctx context.Context, r *engine.Run, phase string, m string) error {
	if len(r.Cluster.SLBs()) == 0 {
		return nil
	}
	if err := haproxyServer(ctx, r, phase, m, "enable"); err != nil {
		return err
	}
	return r.Journal.Record(m, phase, state.Done, lbOutKey(m), "back in HAProxy")
}

// FinishInterrupted completes what a killed run of phase left pending in the
// journal: masters out of HAProxy go back in, restarts are done.
func FinishInterrupted(ctx context.Context, r *engine.Run, phase string) error {
	pending, err := state.PendingIntents(r.State.Journal())
	if err != nil {
		return fmt.Errorf("reading the journal: %w", err)
	}
	for _, p := range pending {
		if p.Phase != phase {
			continue
		}
		switch {
		case p.Key == lbOutKey(p.Host):
			r.Events.Warnf(phase, p.Host, "an interrupted run left %s out of HAProxy: putting it back", p.Host)
			if err := HAProxyIn(ctx, r, phase, p.Host); err != nil {
				return err
			}
		case strings.HasPrefix(p.Key, "restart:"):
			h := r.Cluster.Host(p.Host)
			if h == nil {
				continue // no longer in the inventory
			}
			conn, err := r.Connect(ctx, h)
			if err != nil {
				return engine.WrapPhase(phase, p.Host, err)
			}
			c := engine.PendingRestart(&engine.HostCtx{Host: h, Conn: conn, Run: r}, phase, strings.TrimPrefix(p.Key, "restart:"), false)
			if err := engine.ApplyChange(ctx, r, conn, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// haproxyServer enables or disables the master's server in HAProxy's
// backend on every slb host, through its admin socket.
func haproxyServer(ctx context.Context, r *engine.Run, phase, m, verb string) error {
	cmd := fmt.Sprintf("command -v socat >/dev/null || { echo 'socat is not installed' >&2; exit 127; }; echo '%s server %s/%s' | socat stdio %s",
		verb, templates.HAProxyBackendName, m, haproxySocket)
	for _, s := range r.Cluster.SLBs() {
		conn, err := r.Connect(ctx, s)
		if err != nil {
			return engine.WrapPhase(phase, s.Name, err)
		}
		c := &engine.Change{Host: s.Name, Phase: phase, Kind: engine.KindCommand, Key: "cmd:haproxy-" + verb,
			Desc: fmt.Sprintf("%s %s in HAProxy", verb, m),
			Apply: func(ctx context.Context, h transport.Host) error {
				res, err := h.Run(ctx, transport.Cmd{Command: cmd, Timeout: 15 * time.Second})
				if err != nil {
					return fmt.Errorf("%w — install socat on %s, and check that HAProxy runs with its admin socket %s", err, s.Name, haproxySocket)
				}
				if out := strings.TrimSpace(string(res.Stdout)); out != "" {
					return fmt.Errorf("HAProxy answered %q — check the backend %s in %s", out, templates.HAProxyBackendName, haproxyCfg)
				}
				return nil
			}}
		if err := engine.ApplyChange(ctx, r, conn, c); err != nil {
			return err
		}
	}
	return nil
}

// WaitHAProxyUp waits until every slb's HAProxy sees master m UP again, so
// the next master leaves only when this one takes traffic.
func WaitHAProxyUp(ctx context.Context, r *engine.Run, phase, m string, timeout time.Duration) error {
	cmd := fmt.Sprintf("echo 'show stat' | socat stdio %s | awk -F, '$1==\"%s\" && $2==\"%s\" {print $18}'", haproxySocket, templates.HAProxyBackendName, m)
	for _, s := range r.Cluster.SLBs() {
		conn, err := r.Connect(ctx, s)
		if err != nil {
			return engine.WrapPhase(phase, s.Name, err)
		}
		last := ""
		err = engine.Poll(ctx, timeout, time.Second, func(ctx context.Context) (bool, error) {
			res, err := conn.Run(ctx, transport.Cmd{Command: cmd, Timeout: 15 * time.Second, ReadOnly: true})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			last = "status " + strings.TrimSpace(string(res.Stdout))
			return last == "status UP", nil
		})
		if errors.Is(err, engine.ErrTimeout) {
			return engine.Errorf(s.Name, phase, "check kube-apiserver on "+m+" ('crictl ps -a', 'journalctl -u kubelet') and HAProxy's log on "+s.Name,
				"waited %s for HAProxy to see %s UP (last: %s)", timeout, m, last)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stepChange is one step of a node's roll (upgrade, certs renew, the etcd
// servers after a delete): a Change whose Apply is the step.
func stepChange(desc string, apply func(ctx context.Context) error) *engine.Change {
	return &engine.Change{Kind: engine.KindCommand, Key: "step:" + desc, Desc: desc,
		Apply: func(ctx context.Context, _ transport.Host) error { return apply(ctx) }}
}

// haproxyOutStep takes master m out of HAProxy on every slb (HAProxyOut).
func haproxyOutStep(r *engine.Run, phase string, m *v1alpha1.Host) *engine.Change {
	return stepChange("take "+m.Name+" out of HAProxy on every slb", func(ctx context.Context) error {
		return HAProxyOut(ctx, r, phase, m)
	})
}

// haproxyBackStep puts master m back into HAProxy and waits until every slb
// sees it UP, so the next master leaves only when this one takes traffic.
func haproxyBackStep(r *engine.Run, phase, m string, timeout time.Duration) *engine.Change {
	return stepChange("put "+m+" back into HAProxy and wait until every slb sees it UP", func(ctx context.Context) error {
		if err := HAProxyIn(ctx, r, phase, m); err != nil {
			return err
		}
		return WaitHAProxyUp(ctx, r, phase, m, timeout)
	})
}
