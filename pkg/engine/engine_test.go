package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/transport"
)

// fakeSystemd answers systemctl like a host whose units start when told.
type fakeSystemd struct {
	mu     sync.Mutex
	active map[string]bool
	starts map[string]int
}

func (s *fakeSystemd) run(cmd transport.Cmd) (transport.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := cmd.Command
	switch {
	case strings.HasPrefix(c, "systemctl is-enabled"):
		unit := strings.TrimSuffix(strings.Fields(c)[2], ";")
		st := "disabled\ninactive\n\n"
		if s.active[unit] {
			st = "enabled\nactive\nMon 2026-11-23 10:00:00 UTC\n"
		}
		return transport.Result{Stdout: []byte(st)}, nil
	case strings.HasPrefix(c, "systemctl restart"), strings.HasPrefix(c, "systemctl reload"):
		f := strings.Fields(c)
		unit := f[len(f)-1]
		s.active[unit] = true
		s.starts[unit]++
	}
	return transport.Result{}, nil
}

// demoPhase writes one config file and keeps a unit running.
type demoPhase struct{ content string }

func (*demoPhase) Name() string                  { return "demo" }
func (*demoPhase) Title() string                 { return "demo" }
func (*demoPhase) Hosts(r *Run) []*v1alpha1.Host { return AllHosts(r) }
func (d *demoPhase) Plan(ctx context.Context, hc *HostCtx) ([]*Change, error) {
	c, err := FileChange(ctx, hc, "demo", transport.File{Path: "/etc/demo.conf", Content: []byte(d.content)}, FileOpts{})
	if err != nil {
		return nil, err
	}
	var out []*Change
	if c != nil {
		out = append(out, c)
	}
	u, err := UnitChanges(ctx, hc, Unit{Name: "demo", ConfigChanged: c != nil})
	return append(out, u...), err
}

type testEnv struct {
	run   *Run
	fakes map[string]*transport.Fake
	sysd  map[string]*fakeSystemd
	coll  *events.Collect
}

func newTestEnv(t *testing.T, dryRun bool, names ...string) *testEnv {
	t.Helper()
	c := &v1alpha1.Cluster{}
	for _, n := range names {
		c.Spec.Hosts = append(c.Spec.Hosts, v1alpha1.Host{Name: n, Address: "10.0.0.1", InternalAddress: "10.0.0.1", Roles: []v1alpha1.Role{v1alpha1.RoleWorker}})
	}
	st, err := state.Open(t.TempDir(), "t")
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{fakes: map[string]*transport.Fake{}, sysd: map[string]*fakeSystemd{}, coll: &events.Collect{}}
	for _, n := range names {
		f := transport.NewFake(n)
		s := &fakeSystemd{active: map[string]bool{}, starts: map[string]int{}}
		f.OnRun = s.run
		env.fakes[n], env.sysd[n] = f, s
	}
	env.run = &Run{Cluster: c, State: st, Events: events.NewEmitter("test", env.coll), DryRun: dryRun,
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return env.fakes[h.Name], nil }}
	return env
}

func (e *testEnv) with(t *testing.T, dryRun bool) *Run {
	r := Run{Cluster: e.run.Cluster, State: e.run.State, Events: e.run.Events, Connect: e.run.Connect, DryRun: dryRun}
	e.coll.Events = nil
	if !dryRun {
		j, err := state.OpenJournal(r.State.Journal(), "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		r.Journal = j
	}
	return &r
}

func TestPlanApplyConverge(t *testing.T) {
	env := newTestEnv(t, true, "a", "b", "c")
	ctx := context.Background()
	// plan changes nothing and lists every change
	sum, err := (&Engine{Run: env.with(t, true), Phases: []Phase{&demoPhase{"x=1\n"}}}).Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Changes != 9 { // per host: file, enable, start
		t.Fatalf("plan: %d changes, want 9", sum.Changes)
	}
	for n, f := range env.fakes {
		if len(f.Writes) != 0 || env.sysd[n].starts["demo"] != 0 {
			t.Fatalf("plan touched host %s", n)
		}
	}
	if got := len(env.coll.Of(events.Change)); got != 9 {
		t.Fatalf("plan events: %d", got)
	}
	// apply does exactly that
	sum, err = (&Engine{Run: env.with(t, false), Phases: []Phase{&demoPhase{"x=1\n"}}}).Execute(ctx)
	if err != nil || sum.Changes != 9 {
		t.Fatalf("apply: %v, %d changes", err, sum.Changes)
	}
	// a re-apply changes and restarts nothing
	sum, err = (&Engine{Run: env.with(t, false), Phases: []Phase{&demoPhase{"x=1\n"}}}).Execute(ctx)
	if err != nil || sum.Changes != 0 {
		t.Fatalf("re-apply: %v, %d changes: %+v", err, sum.Changes, env.coll.Of(events.Change))
	}
	for n := range env.fakes {
		if env.sysd[n].starts["demo"] != 1 {
			t.Fatalf("%s: demo started %d times", n, env.sysd[n].starts["demo"])
		}
	}
	// a config change restarts, with a diff in the plan
	_, err = (&Engine{Run: env.with(t, true), Phases: []Phase{&demoPhase{"x=2\n"}}}).Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var diff string
	for _, ev := range env.coll.Of(events.Change) {
		diff += ev.Diff
	}
	if !strings.Contains(diff, "-x=1") || !strings.Contains(diff, "+x=2") {
		t.Fatalf("diff missing: %q", diff)
	}
}

// A run killed after writing a config but before restarting the unit is
// re-planned from the journal: the next run restarts it.
func TestPendingRestartFromJournal(t *testing.T) {
	env := newTestEnv(t, false, "a")
	ctx := context.Background()
	if _, err := (&Engine{Run: env.with(t, false), Phases: []Phase{&demoPhase{"x=1\n"}}}).Execute(ctx); err != nil {
		t.Fatal(err)
	}
	// Simulate the kill: restart fails after the new file is written.
	env.fakes["a"].Fail("systemctl restart demo", 1, "killed")
	_, err := (&Engine{Run: env.with(t, false), Phases: []Phase{&demoPhase{"x=2\n"}}}).Execute(ctx)
	if err == nil || !strings.Contains(err.Error(), "a / demo") {
		t.Fatalf("want a failure naming host and phase, got %v", err)
	}
	// The file is already there; only the journal knows the restart is owed.
	env.fakes["a"] = transport.NewFake("a")
	env.fakes["a"].OnRun = env.sysd["a"].run
	env.fakes["a"].SetFile(transport.File{Path: "/etc/demo.conf", Content: []byte("x=2\n")})
	before := env.sysd["a"].starts["demo"]
	sum, err := (&Engine{Run: env.with(t, false), Phases: []Phase{&demoPhase{"x=2\n"}}}).Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Changes != 1 || env.sysd["a"].starts["demo"] != before+1 {
		t.Fatalf("pending restart not re-planned: %d changes, %d starts", sum.Changes, env.sysd["a"].starts["demo"]-before)
	}
	pend, _ := state.PendingIntents(env.run.State.Journal())
	if len(pend) != 0 {
		t.Fatalf("journal still has pending intents: %+v", pend)
	}
}

func TestErrorsNameEveryHost(t *testing.T) {
	env := newTestEnv(t, false, "a", "b", "c")
	env.run.Connect = func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) {
		if h.Name == "a" {
			return env.fakes["a"], nil
		}
		return nil, &transport.ConnectError{Host: h.Name, Addr: h.Address + ":22", Err: fmt.Errorf("connection refused"), Hint: "check that sshd runs"}
	}
	_, err := (&Engine{Run: env.with(t, false), Phases: []Phase{&demoPhase{"x"}}}).Execute(context.Background())
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"b / demo: cannot connect to 10.0.0.1:22: connection refused — check that sshd runs", "c / demo"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(env.fakes["a"].Writes) != 0 {
		// a was planned but nothing was applied because planning failed elsewhere
		t.Errorf("host a was changed although the phase failed to plan")
	}
}

func TestSelect(t *testing.T) {
	var all []Phase
	for _, n := range []string{"preflight", "slb", "etcd", "runtime"} {
		all = append(all, &namedPhase{n})
	}
	got, err := Select(all, []string{"etcd", "slb"}, nil)
	if err != nil || len(got) != 2 || got[0].Name() != "slb" {
		t.Fatalf("only: %v %v", got, err)
	}
	got, err = Select(all, nil, []string{"preflight"})
	if err != nil || len(got) != len(all)-1 {
		t.Fatalf("skip: %v %v", got, err)
	}
	if _, err := Select(all, []string{"etc"}, nil); err == nil || !strings.Contains(err.Error(), "unknown phase \"etc\"") {
		t.Fatalf("typo: %v", err)
	}
}

type namedPhase struct{ name string }

func (p *namedPhase) Name() string  { return p.name }
func (p *namedPhase) Title() string { return p.name }

func TestParseFacts(t *testing.T) {
	if f := parseFacts("iface=\n"); f.Iface != "" {
		t.Errorf("empty iface parsed as %q", f.Iface)
	}
	f := parseFacts("os=debian\ncgroup=cgroup2fs\nports_hex=1A0B,0016,\nactive=etcd\nmissing=ip\nmemtotal=2048000\niface=host0\n")
	if f.OS != "debian" || f.Cgroup != "v2" || !f.Ports[6667] || !f.Ports[22] || !f.Active["etcd"] || f.Missing[0] != "ip" || f.MemTotalKB != 2048000 || f.Iface != "host0" {
		t.Fatalf("%+v", f)
	}
}

func TestPoll(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := Poll(ctx, time.Second, time.Millisecond, func(context.Context) (bool, error) { n++; return n == 3, nil }); err != nil || n != 3 {
		t.Fatalf("poll until the third call: n=%d err=%v", n, err)
	}
	err := Poll(ctx, 20*time.Millisecond, 5*time.Millisecond, func(context.Context) (bool, error) { return false, errors.New("still down") })
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "still down") {
		t.Fatalf("timeout: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Poll(cctx, time.Minute, time.Second, func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestForEachHostBound(t *testing.T) {
	r := &Run{Options: Options{Concurrency: 3}}
	var mu sync.Mutex
	running, peak := 0, 0
	items := make([]int, 20)
	err := ForEachHost(context.Background(), r, items, func(ctx context.Context, _ int) error {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	if err != nil || peak > 3 {
		t.Fatalf("peak %d hosts at once with --concurrency 3 (err %v)", peak, err)
	}
	errs := ForEachHost(context.Background(), r, []int{1, 2, 3}, func(ctx context.Context, i int) error {
		if i != 2 {
			return fmt.Errorf("host %d failed", i)
		}
		return nil
	})
	if errs == nil || !strings.Contains(errs.Error(), "host 1 failed") || !strings.Contains(errs.Error(), "host 3 failed") {
		t.Fatalf("every failure is reported: %v", errs)
	}
}

// The run's end names the command that ran, and says failed when it did.
func TestRunEndNamesTheCommand(t *testing.T) {
	env := newTestEnv(t, false, "a")
	ctx := context.Background()
	end := func() string {
		ends := env.coll.Of(events.RunEnd)
		return ends[len(ends)-1].Message
	}
	r := env.with(t, false)
	r.Command = "certs renew"
	if _, err := (&Engine{Run: r, Phases: []Phase{&demoPhase{"x=1\n"}}}).Execute(ctx); err != nil || end() != "certs renew complete" {
		t.Errorf("%v: %q", err, end())
	}
	if _, err := (&Engine{Run: env.with(t, false), Phases: []Phase{&demoPhase{"x=1\n"}}}).Execute(ctx); err != nil || end() != "apply complete" {
		t.Errorf("no command: %v: %q", err, end())
	}
	env.fakes["a"].Fail("systemctl restart demo", 1, "boom")
	r = env.with(t, false)
	r.Command = "upgrade"
	if _, err := (&Engine{Run: r, Phases: []Phase{&demoPhase{"x=2\n"}}}).Execute(ctx); err == nil || end() != "upgrade failed" {
		t.Errorf("%v: %q", err, end())
	}
}
