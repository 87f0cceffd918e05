// Package e2e proves k4t on real hosts: a systemd-nspawn lab on this
// machine (pkg/lab), driven with the k4t binary the way a user drives it.
// Run with `make e2e` (root; K4T_E2E=1, K4T_BIN set by the Makefile).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/lab"
)

// env is one test's lab and its k4t state.
type env struct {
	t        *testing.T
	lab      *lab.Lab
	bin      string
	stateDir string
	inv      string
}

func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("K4T_E2E") == "" {
		t.Skip("end-to-end test: run `make e2e` (root, K4T_E2E=1)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("e2e tests need root (systemd-nspawn, bridges, mounts)")
	}
}

// newLab brings up hosts and tears them down when the test ends, pass or fail.
func newLab(t *testing.T, hosts ...string) *env {
	requireE2E(t)
	bin := os.Getenv("K4T_BIN")
	if bin == "" {
		t.Fatal("K4T_BIN is not set: run `make e2e`")
	}
	l := lab.New("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		if err := l.Down(ctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
		t.Logf("lab down took %s", time.Since(start).Round(10*time.Millisecond))
	})
	start := time.Now()
	if err := l.Up(ctx, hosts); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Logf("lab up (%d hosts) took %s", len(hosts), time.Since(start).Round(10*time.Millisecond))
	// The state dir (logs, rendered files, journal) is kept when a test fails.
	stateDir, err := os.MkdirTemp("", "k4t-e2e-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("k4t state dir kept for inspection: %s", stateDir)
			return
		}
		os.RemoveAll(stateDir)
	})
	e := &env{t: t, lab: l, bin: bin, stateDir: stateDir}
	e.inv = filepath.Join(t.TempDir(), "hosts.yaml")
	if err := l.WriteInventory(e.inv, hosts); err != nil {
		t.Fatal(err)
	}
	return e
}

// result of one k4t run.
type result struct {
	code     int
	stdout   string
	stderr   string
	events   []map[string]any
	duration time.Duration
}

func (r result) changes() int {
	for _, ev := range r.events {
		if ev["type"] == "run_end" {
			if n, ok := ev["changes"].(float64); ok {
				return int(n)
			}
			return 0
		}
	}
	return -1
}

// uploaded is the run_end's bytes_uploaded (-1 when the run did not say).
func (r result) uploaded() int64 {
	for _, ev := range r.events {
		if ev["type"] == "run_end" {
			if n, ok := ev["bytes_uploaded"].(float64); ok {
				return int64(n)
			}
		}
	}
	return -1
}

// phaseDurations from the JSON events.
func (r result) phaseDurations() map[string]float64 {
	out := map[string]float64{}
	for _, ev := range r.events {
		if ev["type"] == "phase_end" {
			d, _ := ev["duration_s"].(float64)
			out[ev["phase"].(string)] = d
		}
	}
	return out
}

// k4t runs the binary with -o json and the test's state dir.
func (e *env) k4t(args ...string) result {
	e.t.Helper()
	return e.k4tWatched(nil, args...)
}

// k4tWatched is k4t, calling onEvent (when set) with each JSON event as it
// arrives. onEvent may end the run with kill (SIGKILL; once; safe from any
// goroutine), e.g. to prove that a re-run converges.
func (e *env) k4tWatched(onEvent func(ev map[string]any, kill func()), args ...string) result {
	e.t.Helper()
	args = append([]string{"--state-dir", e.stateDir, "-o", "json"}, args...)
	cmd := exec.Command(e.bin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("running k4t: %v", err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL) }) }
	var stdout strings.Builder
	var evs []map[string]any
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		stdout.Write(sc.Bytes())
		stdout.WriteByte('\n')
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		evs = append(evs, ev)
		if onEvent != nil {
			onEvent(ev, kill)
		}
	}
	err = cmd.Wait()
	r := result{stdout: stdout.String(), stderr: errb.String(), duration: time.Since(start), events: evs}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running k4t: %v", err)
	}
	return r
}

// exec runs a command on a lab host and fails the test on error.
func (e *env) exec(host, cmd string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.lab.Exec(ctx, host, cmd)
	if err != nil {
		e.t.Fatalf("%s: %s: %v\n%s", host, cmd, err, out)
	}
	return strings.TrimSpace(out)
}

// tryExec runs a command and returns its output and error.
func (e *env) tryExec(host, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.lab.Exec(ctx, host, cmd)
	return strings.TrimSpace(out), err
}

// saveInventory writes c as the test's inventory (e.inv).
func (e *env) saveInventory(t *testing.T, c *v1alpha1.Cluster) {
	t.Helper()
	b, err := lab.MarshalInventory(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.inv, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeInventory writes a variant of the lab inventory.
func (e *env) writeInventory(name string, edit func(string) string) string {
	e.t.Helper()
	b, err := os.ReadFile(e.inv)
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(e.inv), name)
	if err := os.WriteFile(p, []byte(edit(string(b))), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}
