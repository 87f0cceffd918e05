package phases

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/hostos"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// SLB puts HAProxy and keepalived on the slb hosts: a TCP frontend on
// VIP:6443 to every master's kube-apiserver, the VIP held by keepalived
// (unicast VRRP, authenticated, tracking HAProxy).
//
// Both load balancers change as one transaction: candidate configs go to
// every slb host, are validated on every one (haproxy -c, keepalived -t),
// and only when all are valid are they swapped in and reloaded. A failure
// while swapping rolls every host back.
type SLB struct{}

const (
	haproxyCfg    = "/etc/haproxy/haproxy.cfg"
	keepalivedCfg = "/etc/keepalived/keepalived.conf"
	candidateExt  = ".k4t-new"
	backupExt     = ".k4t-prev"
	statsAddress  = "127.0.0.1:8404"
)

func (*SLB) Name() string                         { return "slb" }
func (*SLB) Title() string                        { return "SLB: HAProxy + keepalived holding the VIP (one transaction)" }
func (*SLB) ShouldRun(r *engine.Run) bool         { return len(r.Cluster.SLBs()) > 0 }
func (*SLB) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.SLBs() }

func (s *SLB) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	f, err := hc.Facts(ctx)
	if err != nil {
		return nil, err
	}
	var out []*engine.Change
	// socat speaks to HAProxy's runtime socket (certs renew takes masters out).
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "command -v haproxy >/dev/null && command -v keepalived >/dev/null && command -v socat >/dev/null && echo present; true", ReadOnly: true})
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(res.Stdout), "present") {
		pc, err := installPackages(hc, f, "haproxy", "keepalived", "socat")
		if err != nil {
			return nil, err
		}
		out = append(out, pc)
	}
	files, err := s.render(hc, f)
	if err != nil {
		return nil, err
	}
	planned := make([]engine.PlannedFile, len(files))
	for i, file := range files {
		// keepalived.conf holds the VRRP password: no diff, no copy in rendered/.
		planned[i] = engine.PlannedFile{File: file, Opts: engine.FileOpts{Secret: file.Path == keepalivedCfg}}
	}
	fileChanges, err := engine.FileChanges(ctx, hc, s.Name(), planned...)
	if err != nil {
		return nil, err
	}
	changed := map[string]bool{}
	for i, ch := range fileChanges {
		if ch != nil {
			changed[files[i].Path] = true
			out = append(out, ch)
		}
	}
	hu, err := engine.UnitChanges(ctx, hc, engine.Unit{Name: "haproxy", ConfigChanged: changed[haproxyCfg], Reload: true})
	if err != nil {
		return nil, err
	}
	ku, err := engine.UnitChanges(ctx, hc, engine.Unit{Name: "keepalived", ConfigChanged: changed[keepalivedCfg] || changed[templates.KeepalivedCheckPath], Reload: true})
	if err != nil {
		return nil, err
	}
	return append(append(out, hu...), ku...), nil
}

// render makes the three files of one slb host.
func (s *SLB) render(hc *engine.HostCtx, f *engine.Facts) ([]transport.File, error) {
	r, c := hc.Run, hc.Run.Cluster
	var backends []templates.Backend
	for _, m := range c.Masters() {
		backends = append(backends, templates.Backend{Name: m.Name, Address: m.InternalAddress, Port: 6443})
	}
	vip := c.Spec.ControlPlaneEndpoint
	lb := c.Spec.LoadBalancer
	hap, err := templates.HAProxy(templates.HAProxyInput{
		FrontendAddress: vip.Address, FrontendPort: vip.Port, Backends: backends,
		Check:        templates.HealthCheck{Interval: lb.HealthCheckInterval.Duration},
		StatsAddress: statsAddress,
	})
	if err != nil {
		return nil, err
	}
	slbs := c.SLBs()
	idx := 0
	var peers []string
	for i, h := range slbs {
		if h.Name == hc.Name() {
			idx = i
		} else {
			peers = append(peers, h.InternalAddress)
		}
	}
	iface := lb.Interface
	if iface == "" {
		iface = f.Iface
	}
	if iface == "" {
		return nil, fmt.Errorf("no interface holds %s; set spec.loadBalancer.interface", hc.Host.InternalAddress)
	}
	pass := ""
	if lb.VRRPVersion != 3 { // version 3 adverts carry no password
		if pass, err = vrrpPassword(r); err != nil {
			return nil, err
		}
	}
	ka, err := templates.Keepalived(templates.KeepalivedInput{
		RouterID: hc.Name(), Interface: iface, VirtualRouterID: lb.VirtualRouterID,
		Priority: templates.KeepalivedPriority(idx), UnicastSrcIP: hc.Host.InternalAddress, UnicastPeers: peers,
		VIP: vip.Address, VIPPrefix: lb.VIPPrefix, VRRPVersion: lb.VRRPVersion, AdvertInterval: lb.AdvertInterval.Duration, AuthPass: pass,
	})
	if err != nil {
		return nil, err
	}
	chk, err := templates.KeepalivedCheck(templates.KeepalivedCheckInput{ProbeAddress: statsAddress})
	if err != nil {
		return nil, err
	}
	return []transport.File{
		{Path: haproxyCfg, Mode: 0o644, Content: hap},
		{Path: templates.KeepalivedCheckPath, Mode: 0o755, Content: chk},
		{Path: keepalivedCfg, Mode: 0o640, Content: ka},
	}, nil
}

// vrrpPassword is the VRRPv2 PASS secret: from the inventory, or random and
// kept in the state dir so every run renders the same file.
func vrrpPassword(r *engine.Run) (string, error) {
	if ref := r.Cluster.Spec.LoadBalancer.AuthPassword; ref != nil {
		v, err := engine.ResolveSecret(ref, "spec.loadBalancer.authPassword")
		if len(v) > 8 {
			v = v[:8]
		}
		return v, err
	}
	return r.State.Secret("vrrp-auth-pass", func() (string, error) {
		const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		return string(b), nil
	})
}

// installPackages installs packages with the host's package manager.
func installPackages(hc *engine.HostCtx, f *engine.Facts, pkgs ...string) (*engine.Change, error) {
	list := strings.Join(pkgs, " ")
	if f.PkgManager == "" {
		return nil, fmt.Errorf("%s are not installed and no package manager was found — install them by hand", list)
	}
	cmd := hostos.OS{PkgManager: f.PkgManager}.InstallCommand(pkgs...)
	c := engine.CommandChange(hc, "", "install "+list+" ("+f.PkgManager+")", cmd)
	c.Kind, c.Key = engine.KindPackage, "package:"+list
	return c, nil
}

// Apply is the transaction: candidates everywhere, validate everywhere,
// then swap and reload; roll back every host if a swap fails.
func (s *SLB) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	type hostTx struct {
		pl        *engine.HostPlan
		files     []*engine.Change // config files, swapped together
		other     []*engine.Change // packages first, units after the swap
		committed []string         // live paths replaced (for rollback)
		hadLive   map[string]bool
	}
	var txs []*hostTx
	for _, pl := range plans {
		tx := &hostTx{pl: pl, hadLive: map[string]bool{}}
		for _, c := range pl.Changes {
			if c.Kind == engine.KindFile && c.File != nil {
				tx.files = append(tx.files, c)
			} else {
				tx.other = append(tx.other, c)
			}
		}
		txs = append(txs, tx)
	}
	each := func(fn func(tx *hostTx) error) error {
		// Not cancelled with ctx: cleanup and rollback must reach every host.
		return engine.ForEachHost(context.WithoutCancel(ctx), r, txs, func(_ context.Context, tx *hostTx) error { return fn(tx) })
	}
	// 1. packages (nothing live is configured by them)
	if err := each(func(tx *hostTx) error {
		for _, c := range tx.other {
			if c.Kind == engine.KindPackage {
				if err := engine.ApplyChange(ctx, r, tx.pl.Conn, c); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// 2. candidates, 3. validation — on every host.
	validateErr := each(func(tx *hostTx) error {
		for _, c := range tx.files {
			cand := *c.File
			cand.Path += candidateExt
			up := &engine.Change{Host: c.Host, Phase: c.Phase, Kind: engine.KindFile, Key: "file:" + cand.Path, Secret: c.Secret,
				Desc: "upload candidate " + cand.Path + " (validated on every slb host before any is swapped in)",
				Apply: func(ctx context.Context, h transport.Host) error {
					_, err := h.Put(ctx, cand)
					return err
				}}
			if err := engine.ApplyChange(ctx, r, tx.pl.Conn, up); err != nil {
				return err
			}
		}
		return s.validate(ctx, tx.pl.HostCtx, tx.files)
	})
	if validateErr != nil {
		if err := each(func(tx *hostTx) error {
			return removeCandidates(context.WithoutCancel(ctx), r, tx.pl.HostCtx, tx.files)
		}); err != nil {
			r.Events.Warnf(s.Name(), "", "candidate files (*%s) could not all be removed; the next run replaces them: %v", candidateExt, err)
		}
		return fmt.Errorf("candidate configuration rejected; no slb host was changed:\n%w", validateErr)
	}
	// 4. swap in and reload, everywhere. The reload intents are journaled
	// before any swap: a run killed between the two would otherwise leave new
	// files under the old running config, which a later plan cannot see.
	for _, tx := range txs {
		if err := engine.JournalIntents(r, tx.other); err != nil {
			return err
		}
	}
	commitErr := each(func(tx *hostTx) error {
		h := tx.pl.Conn
		for _, c := range tx.files {
			live := c.File.Path
			fi, err := h.Stat(ctx, live)
			if err != nil {
				return err
			}
			tx.hadLive[live] = fi.Exists
			swap := *c
			swap.Apply = func(ctx context.Context, h transport.Host) error {
				cmd := fmt.Sprintf("mv -f %s %s", transport.ShellQuote(live+candidateExt), transport.ShellQuote(live))
				if fi.Exists {
					cmd = fmt.Sprintf("cp -p %s %s && ", transport.ShellQuote(live), transport.ShellQuote(live+backupExt)) + cmd
				}
				if _, err := h.Run(ctx, transport.Cmd{Command: cmd}); err != nil {
					return err
				}
				tx.committed = append(tx.committed, live)
				if c.Secret {
					return nil
				}
				return r.State.WriteFile(r.State.Rendered(c.Host, live), c.File.Content, 0o600)
			}
			if err := engine.ApplyChange(ctx, r, h, &swap); err != nil {
				return err
			}
		}
		for _, c := range tx.other {
			if c.Kind != engine.KindPackage {
				if err := engine.ApplyChange(ctx, r, h, c); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if commitErr == nil {
		return nil
	}
	// Roll back every host that swapped anything.
	rb := context.WithoutCancel(ctx)
	rbErr := each(func(tx *hostTx) error {
		if len(tx.committed) == 0 {
			return nil
		}
		var cmds []string
		for _, live := range tx.committed {
			if tx.hadLive[live] {
				cmds = append(cmds, fmt.Sprintf("mv -f %s %s", transport.ShellQuote(live+backupExt), transport.ShellQuote(live)))
			} else {
				cmds = append(cmds, "rm -f "+transport.ShellQuote(live))
			}
		}
		cmds = append(cmds, "systemctl reload-or-restart haproxy keepalived")
		back := engine.CommandChange(tx.pl.HostCtx, s.Name(), "roll back to the previous configuration ("+strings.Join(tx.committed, ", ")+")", strings.Join(cmds, " && "))
		err := engine.ApplyChange(rb, r, tx.pl.Conn, back)
		r.Events.Warnf(s.Name(), tx.pl.Name(), "rolled back to the previous configuration")
		return err
	})
	if rbErr != nil {
		return fmt.Errorf("%w\nrollback also failed: %v", commitErr, rbErr)
	}
	return fmt.Errorf("%w\nevery slb host was rolled back to its previous configuration", commitErr)
}

// validate runs the validators on one host's candidates (and on its live
// files where only the other one changed, to validate the pair).
func (s *SLB) validate(ctx context.Context, hc *engine.HostCtx, files []*engine.Change) error {
	cand := map[string]bool{}
	for _, c := range files {
		cand[c.File.Path] = true
	}
	path := func(p string) string {
		if cand[p] {
			return p + candidateExt
		}
		return p
	}
	var errs []error
	if _, err := hc.Conn.Run(ctx, transport.Cmd{Command: "haproxy -c -q -f " + path(haproxyCfg), Timeout: 30 * time.Second, ReadOnly: true}); err != nil {
		errs = append(errs, validatorError(hc, "haproxy -c", err))
	}
	// keepalived -t refuses a config whose check script is missing, so the
	// candidate config is checked against the candidate script.
	kcfg := path(keepalivedCfg)
	cmd := "keepalived -t -f " + kcfg
	if cand[templates.KeepalivedCheckPath] {
		tmp := keepalivedCfg + ".k4t-check"
		cmd = fmt.Sprintf("sed 's#%[1]s#%[1]s%[2]s#' %[3]s > %[4]s && keepalived -t -f %[4]s; rc=$?; rm -f %[4]s; exit $rc",
			templates.KeepalivedCheckPath, candidateExt, kcfg, tmp)
	}
	if _, err := hc.Conn.Run(ctx, transport.Cmd{Command: cmd, Timeout: 30 * time.Second}); err != nil {
		errs = append(errs, validatorError(hc, "keepalived -t", err))
	}
	return errors.Join(errs...)
}

func validatorError(hc *engine.HostCtx, validator string, err error) error {
	var ce *transport.CmdError
	if errors.As(err, &ce) {
		out := strings.TrimSpace(ce.Stderr)
		return engine.Errorf(hc.Name(), "slb", "fix the inventory (or the host) and re-run; the live configuration is untouched",
			"%s rejected the candidate config (exit %d): %s", validator, ce.ExitCode, out)
	}
	return &engine.Error{Host: hc.Name(), Phase: "slb", Err: err}
}

func removeCandidates(ctx context.Context, r *engine.Run, hc *engine.HostCtx, files []*engine.Change) error {
	var paths []string
	for _, c := range files {
		paths = append(paths, transport.ShellQuote(c.File.Path+candidateExt))
	}
	if len(paths) == 0 {
		return nil
	}
	return engine.ApplyChange(ctx, r, hc.Conn, engine.CommandChange(hc, "slb", "remove the rejected candidates", "rm -f "+strings.Join(paths, " ")))
}

// Check waits until exactly one slb host holds the VIP and HAProxy listens
// on VIP:port there.
func (s *SLB) Check(ctx context.Context, r *engine.Run) error {
	holder, err := WaitVIP(ctx, r, 30*time.Second)
	if err != nil {
		return err
	}
	r.Events.Infof(s.Name(), holder, "holds the VIP %s", r.Cluster.Spec.ControlPlaneEndpoint.Address)
	return nil
}

// keepalivedLogs gathers the last keepalived lines of every slb host.
func keepalivedLogs(ctx context.Context, r *engine.Run) string {
	var b strings.Builder
	for _, h := range r.Cluster.SLBs() {
		conn, err := r.Connect(ctx, h)
		if err != nil {
			continue
		}
		res, _ := conn.Run(ctx, transport.Cmd{Command: "journalctl -u keepalived -n 8 --no-pager -o short-precise", Timeout: 10 * time.Second, ReadOnly: true})
		fmt.Fprintf(&b, "  %s:\n%s\n", h.Name, engine.Indent(string(res.Stdout)))
	}
	return b.String()
}
