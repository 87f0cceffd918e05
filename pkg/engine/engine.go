package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/transport"
)

// Phase is one step of the pipeline. Everything else a phase can do is an
// optional interface below, so a phase implements only what it needs.
type Phase interface {
	Name() string
	Title() string
}

// HostPlanner is a phase that works out, per host, what it would change.
type HostPlanner interface {
	Phase
	Hosts(r *Run) []*v1alpha1.Host
	Plan(ctx context.Context, hc *HostCtx) ([]*Change, error)
}

// Preparer does local work before planning (e.g. issuing certificates in
// the state dir). It runs for plan too: it must not touch hosts.
type Preparer interface {
	Prepare(ctx context.Context, r *Run) error
}

// ShouldRunner can skip a phase for a cluster (e.g. no slb hosts).
type ShouldRunner interface {
	ShouldRun(r *Run) bool
}

// Applier replaces the default apply (every host in parallel, its changes
// in order), e.g. for a transaction across hosts.
type Applier interface {
	Apply(ctx context.Context, r *Run, plans []*HostPlan) error
}

// Checker verifies the phase's outcome after apply (health gates).
type Checker interface {
	Check(ctx context.Context, r *Run) error
}

// PlanChecker marks a Checker that is read-only, so plan runs it too
// (preflight).
type PlanChecker interface {
	Checker
	CheckInPlan()
}

// HostPlan is one host's changes in one phase.
type HostPlan struct {
	*HostCtx
	Changes []*Change
}

// Engine runs phases in order.
type Engine struct {
	Run    *Run
	Phases []Phase
}

// Summary is what a run did.
type Summary struct {
	Changes  int
	Duration time.Duration
}

// Execute plans every phase and, unless r.DryRun, applies it before the next
// phase plans. In plan mode it plans every phase against the hosts as they
// are now.
func (e *Engine) Execute(ctx context.Context) (*Summary, error) {
	r := e.Run
	start := time.Now()
	var uploadedBefore map[string]int64 // the Dialer's counts are the session's; this run's share is reported
	if r.Uploaded != nil {
		uploadedBefore = r.Uploaded()
	}
	sum := &Summary{}
	verb := "apply"
	switch {
	case r.DryRun:
		verb = "plan"
	case r.Command != "":
		verb = r.Command
	}
	if r.State != nil {
		// What an interrupted run left pending is planned again (and shown by plan).
		p, err := state.PendingIntents(r.State.Journal())
		if err != nil {
			return nil, fmt.Errorf("reading the journal: %w", err)
		}
		r.pending = p
	}
	r.Events.Emit(events.Event{Type: events.RunStart, Message: verb})
	var runErr error
	for _, p := range e.Phases {
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		n, err := e.phase(ctx, p)
		sum.Changes += n
		if err != nil {
			runErr = err
			break
		}
	}
	sum.Duration = time.Since(start)
	end := events.Event{Type: events.RunEnd, Changes: sum.Changes, Duration: sum.Duration, Message: verb + " complete"}
	if r.Uploaded != nil {
		var total int64
		for h, n := range r.Uploaded() {
			if n -= uploadedBefore[h]; n > 0 {
				if end.UploadedBy == nil {
					end.UploadedBy = map[string]int64{}
				}
				end.UploadedBy[h] = n
				total += n
			}
		}
		end.Uploaded = &total
	}
	if runErr != nil {
		end.Error = runErr.Error()
		end.Message = verb + " failed"
	}
	r.Events.Emit(end)
	return sum, runErr
}

func (e *Engine) phase(ctx context.Context, p Phase) (int, error) {
	r := e.Run
	if s, ok := p.(ShouldRunner); ok && !s.ShouldRun(r) {
		return 0, nil
	}
	start := time.Now()
	r.Events.Emit(events.Event{Type: events.PhaseStart, Phase: p.Name(), Message: p.Title()})
	n, err := e.phaseBody(ctx, p)
	ev := events.Event{Type: events.PhaseEnd, Phase: p.Name(), Changes: n, Duration: time.Since(start)}
	if err != nil {
		ev.Error = err.Error()
		r.Events.Emit(events.Event{Type: events.Error, Phase: p.Name(), Error: err.Error()})
	}
	r.Events.Emit(ev)
	return n, err
}

func (e *Engine) phaseBody(ctx context.Context, p Phase) (int, error) {
	r := e.Run
	if pr, ok := p.(Preparer); ok {
		if err := pr.Prepare(ctx, r); err != nil {
			return 0, WrapPhase(p.Name(), "", err)
		}
	}
	hp, ok := p.(HostPlanner)
	if !ok {
		_, inPlan := p.(PlanChecker)
		if c, ok := p.(Checker); ok && (!r.DryRun || inPlan) {
			return 0, WrapPhase(p.Name(), "", c.Check(ctx, r))
		}
		return 0, nil
	}
	plans, err := e.plan(ctx, hp)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pl := range plans {
		n += len(pl.Changes)
	}
	if r.DryRun {
		if c, ok := p.(PlanChecker); ok {
			if err := c.Check(ctx, r); err != nil {
				return n, WrapPhase(p.Name(), "", err)
			}
		}
		for _, pl := range plans {
			for _, c := range pl.Changes {
				EmitPlanned(r, c)
			}
		}
		return n, nil
	}
	if n > 0 {
		if a, ok := p.(Applier); ok {
			err = a.Apply(ctx, r, plans)
		} else {
			err = e.forEach(ctx, plans, func(ctx context.Context, pl *HostPlan) error {
				return ApplyChanges(ctx, r, pl)
			})
		}
		if err != nil {
			return n, WrapPhase(p.Name(), "", err)
		}
	}
	if c, ok := p.(Checker); ok {
		if err := c.Check(ctx, r); err != nil {
			return n, WrapPhase(p.Name(), "", err)
		}
	}
	return n, nil
}

// plan works out every host's changes in parallel; every host's failure is
// reported, not just the first.
func (e *Engine) plan(ctx context.Context, p HostPlanner) ([]*HostPlan, error) {
	r := e.Run
	hosts := p.Hosts(r)
	plans := make([]*HostPlan, len(hosts))
	for i, h := range hosts {
		plans[i] = &HostPlan{HostCtx: &HostCtx{Host: h, Run: r}}
	}
	if r.DryRun {
		ctx = transport.WithoutKeptSums(ctx) // a plan leaves no trace on a host
	}
	err := e.forEach(ctx, plans, func(ctx context.Context, pl *HostPlan) error {
		conn, err := r.Connect(ctx, pl.Host)
		if err != nil {
			return err
		}
		pl.Conn = conn
		cs, err := p.Plan(ctx, pl.HostCtx)
		if err != nil {
			return err
		}
		for _, c := range cs {
			c.Host, c.Phase = pl.Name(), p.Name()
		}
		pl.Changes = append(cs, r.pendingChanges(pl.HostCtx, p.Name(), cs)...)
		return nil
	}, wrapHost(p.Name()))
	return plans, err
}

// pendingChanges re-plans what a killed run had started but not finished.
func (r *Run) pendingChanges(hc *HostCtx, phase string, planned []*Change) []*Change {
	have := map[string]bool{}
	for _, c := range planned {
		have[c.Key] = true
	}
	var out []*Change
	for _, p := range r.pending {
		if p.Host != hc.Name() || p.Phase != phase || have[p.Key] {
			continue
		}
		if unit, ok := strings.CutPrefix(p.Key, "restart:"); ok {
			out = append(out, PendingRestart(hc, phase, unit, true)) // the phase's Check waits for health
			have[p.Key] = true
		}
	}
	return out
}

// PendingRestart is the restart of unit that a killed run journaled but
// did not do. systemd is reloaded first: the run may have died between
// writing the unit file and its daemon-reload, which a later plan cannot
// see. noBlock: do not wait for the unit to be ready.
func PendingRestart(hc *HostCtx, phase, unit string, noBlock bool) *Change {
	c := restartChange(hc, unit, "restart", noBlock)
	c.Phase, c.Desc = phase, c.Desc+" (left pending by an interrupted run)"
	restart := c.Apply
	c.Apply = func(ctx context.Context, h transport.Host) error {
		if _, err := h.Run(ctx, transport.Cmd{Command: "systemctl daemon-reload"}); err != nil {
			return err
		}
		return restart(ctx, h)
	}
	return c
}

// ApplyChanges applies one host's changes in order, journaling and emitting
// each. It stops at the first failure.
func ApplyChanges(ctx context.Context, r *Run, pl *HostPlan) error {
	start := time.Now()
	r.Events.Emit(events.Event{Type: events.HostStart, Host: pl.Name(), Phase: phaseOf(pl)})
	if err := JournalIntents(r, pl.Changes); err != nil {
		return err
	}
	done := 0
	var err error
	for _, c := range pl.Changes {
		if err = ApplyChange(ctx, r, pl.Conn, c); err != nil {
			break
		}
		done++
	}
	ev := events.Event{Type: events.HostEnd, Host: pl.Name(), Phase: phaseOf(pl), Changes: done, Duration: time.Since(start)}
	if err != nil {
		ev.Error = err.Error()
	}
	r.Events.Emit(ev)
	return err
}

func phaseOf(pl *HostPlan) string {
	if len(pl.Changes) > 0 {
		return pl.Changes[0].Phase
	}
	return ""
}

// JournalIntents records the intent of every journaled change among cs. It
// goes first, before any file is written: a run killed between a config
// upload and its restart must still restart next time, even though the
// file will by then look unchanged.
func JournalIntents(r *Run, cs []*Change) error {
	for _, c := range cs {
		if c.Journaled {
			if err := r.Journal.Record(c.Host, c.Phase, state.Intent, c.Key, c.Desc); err != nil {
				return err
			}
		}
	}
	return nil
}

// EmitPlanned shows c as planned (plan, --dry-run).
func EmitPlanned(r *Run, c *Change) {
	r.Events.Emit(events.Event{Type: events.Change, Action: "planned", Phase: c.Phase, Host: c.Host, Kind: string(c.Kind), Message: c.Desc, Diff: c.Diff})
}

// ApplyOrPlan applies c, or in a dry run only shows it: for commands that
// act outside the phase engine (drain, uncordon) with the same Change.
func ApplyOrPlan(ctx context.Context, r *Run, h transport.Host, c *Change) error {
	if r.DryRun {
		EmitPlanned(r, c)
		return nil
	}
	return ApplyChange(ctx, r, h, c)
}

// ApplyChange applies one change: journal intent, apply, journal done, emit.
func ApplyChange(ctx context.Context, r *Run, h transport.Host, c *Change) error {
	if r.DryRun {
		return fmt.Errorf("internal: apply during plan (%s)", c)
	}
	if c.Journaled {
		if err := r.Journal.Record(c.Host, c.Phase, state.Intent, c.Key, c.Desc); err != nil {
			return err
		}
	}
	start := time.Now()
	err := c.Apply(ctx, h)
	ev := events.Event{Type: events.Change, Action: "applied", Phase: c.Phase, Host: c.Host, Kind: string(c.Kind), Message: c.Desc, Duration: time.Since(start)}
	if err != nil {
		ev.Action, ev.Error = "failed", err.Error()
		if c.Journaled {
			if jerr := r.Journal.Record(c.Host, c.Phase, state.Failed, c.Key, err.Error()); jerr != nil {
				err = errors.Join(err, fmt.Errorf("and the journal could not record it: %w", jerr))
			}
		}
		r.Events.Emit(ev)
		return &Error{Host: c.Host, Phase: c.Phase, Err: fmt.Errorf("%s: %w", c.Desc, err)}
	}
	if c.Journaled {
		if err := r.Journal.Record(c.Host, c.Phase, state.Done, c.Key, c.Desc); err != nil {
			return err
		}
	}
	r.Events.Emit(ev)
	return nil
}

// forEach runs fn on every plan (see ForEachHost); wrap, if given,
// decorates each host's error.
func (e *Engine) forEach(ctx context.Context, plans []*HostPlan, fn func(context.Context, *HostPlan) error, wrap ...func(*HostPlan, error) error) error {
	return ForEachHost(ctx, e.Run, plans, func(ctx context.Context, pl *HostPlan) error {
		err := fn(ctx, pl)
		if err != nil {
			for _, w := range wrap {
				err = w(pl, err)
			}
		}
		return err
	})
}

func wrapHost(phase string) func(*HostPlan, error) error {
	return func(pl *HostPlan, err error) error { return WrapPhase(phase, pl.Name(), err) }
}

// WrapPhase makes err an *Error naming host and phase unless it already is one.
func WrapPhase(phase, host string, err error) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) && (pe.Host != "" || host == "") {
		if pe.Phase == "" {
			pe.Phase = phase
		}
		return err
	}
	if _, ok := err.(interface{ Unwrap() []error }); ok {
		return err // already a list of per-host errors
	}
	e := &Error{Host: host, Phase: phase, Err: err}
	var ce *transport.ConnectError
	var ke *transport.HostKeyError
	switch {
	case errors.As(err, &ke):
		e.Err = errors.New(strings.TrimPrefix(ke.Error(), host+": "))
	case errors.As(err, &ce):
		e.Err = errors.New(strings.TrimPrefix(ce.Error(), host+": "))
	}
	return e
}
