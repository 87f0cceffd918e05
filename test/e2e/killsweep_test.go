package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// killPoint is where one run of the sweep is killed with SIGKILL.
type killPoint struct {
	phase string
	// onHost: kill while `kubeadm` runs on this host (seen with pgrep),
	// a random 1–6 s after it started. Otherwise at a random change of the
	// phase, or a random moment in a phase that changes no host.
	onHost string
}

func (k killPoint) String() string {
	if k.onHost != "" {
		return k.phase + " (during kubeadm on " + k.onHost + ")"
	}
	return k.phase
}

// sweepPoints: once inside every phase of create, in order, plus the two
// cases of issue 8: during master1's `kubeadm init` and master2's `kubeadm
// join --control-plane`.
var sweepPoints = []killPoint{
	{phase: "preflight"}, {phase: "pki"}, {phase: "os"}, {phase: "slb"}, {phase: "etcd"},
	{phase: "runtime"}, {phase: "kubelet"},
	{phase: "control-plane", onHost: "master1"}, {phase: "control-plane", onHost: "master2"},
	{phase: "workers"}, {phase: "network"}, {phase: "labels"}, {phase: "kubeconfig"},
}

// maxChange bounds the random change picked in a phase (about what a fresh
// 7-host create applies there); a phase that ends sooner is killed at its end.
var maxChange = map[string]int{"os": 20, "slb": 12, "etcd": 30, "runtime": 40, "kubelet": 30, "control-plane": 20, "workers": 4, "network": 12}

// sweepRun is one run of the sweep.
type sweepRun struct {
	point    string // where it was killed ("" for the last run)
	at       string // what it had just done when killed
	killedAt time.Duration
	// recovered: how long the run took to finish the phase the previous
	// run was killed in (the re-run's convergence), from its start.
	recovered time.Duration
	code      int
	events    []map[string]any
}

// createWithKillSweep creates the cluster through kill -9 in every phase:
// each run is the re-run of the previous kill and goes on to the next kill
// point; the last run is not killed and must succeed. The seed is printed
// (K4T_KILL_SEED replays it). It returns the etcd member IDs recorded once
// etcd first formed, and the last run's result.
func (e *env) createWithKillSweep(t *testing.T) (firstIDs string, last result) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("K4T_KILL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	fmt.Printf("FIGURE kill-sweep seed %d (replay: K4T_KILL_SEED=%d)\n", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	prevPhase := ""
	for i, kp := range sweepPoints {
		run := e.runKilled(t, kp, rng, prevPhase)
		if run.code == 0 && run.point == "" {
			t.Fatalf("kill %d (%s): k4t finished before the kill point", i+1, kp)
		}
		if errs := runErrors(run.events); len(errs) > 0 && run.point == "" {
			t.Fatalf("kill %d (%s): the re-run failed before the kill point: %s", i+1, kp, strings.Join(errs, "; "))
		}
		rec := fmt.Sprintf("%.1fs", run.recovered.Seconds())
		if prevPhase == kp.phase || prevPhase == "" {
			rec = "-" // killed again inside the same phase (or the first run)
		}
		fmt.Printf("FIGURE kill %2d in %-46s after %6.1fs, just after: %s; this run got past the previous kill's phase after %s\n",
			i+1, kp.String(), run.killedAt.Seconds(), run.at, rec)
		prevPhase = kp.phase
		if firstIDs == "" {
			firstIDs = e.etcdMemberIDs()
		}
	}
	last = e.k4t("create", "cluster", "-f", e.inv, "--accept-new-hosts")
	if last.code != 0 {
		e.dumpDiagnostics("master1")
		t.Fatalf("the last run after %d kills: exit %d\n%s\n%s", len(sweepPoints), last.code, last.stderr, tail(last.stdout, 40))
	}
	fmt.Printf("FIGURE kill-sweep last run (no kill) converged in %s with %d change(s)\n", last.duration.Round(time.Millisecond), last.changes())
	return firstIDs, last
}

// runErrors lists the error events of a run.
func runErrors(evs []map[string]any) []string {
	var out []string
	for _, ev := range evs {
		if ev["type"] == "error" {
			out = append(out, fmt.Sprint(ev["error"]))
		}
	}
	return out
}

// runKilled starts `k4t create cluster` and kills it at kp.
func (e *env) runKilled(t *testing.T, kp killPoint, rng *rand.Rand, prevPhase string) sweepRun {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	run := sweepRun{}
	var stop func(at string) // set at the first event; the kill may come from a timer
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	nth, seen, inPhase := 0, 0, false
	res := e.k4tWatched(func(ev map[string]any, kill func()) {
		if stop == nil {
			stop = func(at string) {
				mu.Lock()
				defer mu.Unlock()
				if run.point == "" {
					kill()
					run.point, run.at, run.killedAt = kp.String(), at, time.Since(start)
				}
			}
		}
		if ev["type"] == "phase_end" && ev["phase"] == prevPhase && run.recovered == 0 {
			run.recovered = time.Since(start)
		}
		if ev["phase"] != kp.phase {
			return
		}
		switch {
		case ev["type"] == "phase_start":
			inPhase = true
			switch {
			case kp.onHost != "":
				go e.killDuringKubeadm(kp.onHost, time.Second+time.Duration(rng.Int64N(int64(5*time.Second))), stopWatch, stop)
			case maxChange[kp.phase] > 0:
				nth = 1 + rng.IntN(maxChange[kp.phase])
			default:
				d := time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
				time.AfterFunc(d, func() { stop(fmt.Sprintf("%s into the phase", d.Round(time.Millisecond))) })
			}
		case ev["type"] == "change" && ev["action"] == "applied" && inPhase && nth > 0:
			seen++
			if seen == nth {
				stop(fmt.Sprintf("change %d: %v %v", seen, ev["host"], ev["message"]))
			}
		case ev["type"] == "phase_end":
			stop(fmt.Sprintf("the end of the phase (%d change(s))", seen))
		}
	}, "create", "cluster", "-f", e.inv, "--accept-new-hosts")
	mu.Lock()
	defer mu.Unlock()
	run.code, run.events = res.code, res.events
	if run.recovered == 0 {
		run.recovered = run.killedAt
	}
	return run
}

// killDuringKubeadm polls host until kubeadm runs there, then kills k4t
// after the delay.
func (e *env) killDuringKubeadm(host string, delay time.Duration, stop <-chan struct{}, kill func(string)) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(250 * time.Millisecond):
		}
		if out, err := e.tryExec(host, "pgrep -a -x kubeadm"); err == nil && out != "" {
			select {
			case <-stop:
			case <-time.After(delay):
				kill(fmt.Sprintf("%s into `%s` on %s", delay.Round(time.Millisecond), strings.Join(strings.Fields(out)[1:min(3, len(strings.Fields(out)))], " "), host))
			}
			return
		}
	}
}

// etcdMemberIDs is "name id" per member once all three are healthy, else "".
func (e *env) etcdMemberIDs() string {
	out, err := e.etcdctl("master1", "endpoint health -w simple")
	if err != nil || strings.Count(out, "is healthy") != 3 {
		return ""
	}
	out, err = e.etcdctl("master1", "member list -w simple")
	if err != nil {
		return ""
	}
	var ids []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, ", "); len(f) >= 3 {
			ids = append(ids, f[2]+" "+f[0])
		}
	}
	return strings.Join(ids, ", ")
}
