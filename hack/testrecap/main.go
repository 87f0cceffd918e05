// Command testrecap reads `go test -json` on stdin, prints the test output
// as `go test -v` would, and ends with a recap of what failed: each failed
// test with the lines it logged, each test that never finished (a timeout,
// a panic, os.Exit) with everything it printed, and each package that did
// not build, with the compiler's errors. The end of a long CI log then says
// why a run failed, not only which test did. Lines that are not JSON
// (make's own output) pass through as they are.
//
//	go test -json ./test/e2e | go run ./hack/testrecap
//
// It exits 1 when anything failed, and 0 otherwise. Under `set -o
// pipefail` the pipeline fails when either go test or testrecap does.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is the part of test2json's output this reads.
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
}

// A test's log is repeated whole up to maxLines; a longer one as its first
// head and last tail lines (t.Error may be early, t.Fatal is last). A test
// that failed because a subtest did shows its last parentLines only.
const maxLines, head, tail, parentLines = 60, 20, 40, 10

// key names a test (or, with test "", a package).
type key struct{ pkg, test string }

func main() {
	failed, err := recap(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testrecap:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// recap copies the output of the test run in r to w, then the recap; it
// says whether anything failed.
func recap(r io.Reader, w io.Writer) (bool, error) {
	logs := map[key][]string{}     // a test's own log lines (t.Log, t.Error: indented)
	printed := map[key][]string{}  // everything a test printed, for one that never finished
	build := map[string][]string{} // the compiler's output per package that did not build
	var builds []string
	var started []key // in order
	ended := map[key]bool{}
	var failures []key
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "run":
			started = append(started, k)
		case "build-output":
			io.WriteString(w, e.Output)
			if build[e.ImportPath] == nil {
				builds = append(builds, e.ImportPath)
			}
			build[e.ImportPath] = append(build[e.ImportPath], strings.TrimRight(e.Output, "\n"))
		case "output":
			io.WriteString(w, e.Output)
			out := strings.TrimRight(e.Output, "\n")
			if e.Test != "" && isLog(e.Output) {
				logs[k] = append(logs[k], out)
			}
			if e.Test != "" && !strings.HasPrefix(strings.TrimLeft(out, " "), "=== ") {
				printed[k] = append(printed[k], out)
			}
		case "pass", "skip":
			ended[k] = true
		case "fail":
			ended[k] = true
			failures = append(failures, k)
		}
	}
	if err := sc.Err(); err != nil {
		return len(failures) > 0, err
	}
	var unfinished []key
	for _, k := range started {
		if !ended[k] {
			unfinished = append(unfinished, k)
		}
	}
	if len(failures) == 0 && len(unfinished) == 0 && len(build) == 0 {
		return false, nil
	}
	parents := map[key]bool{} // tests that failed (or stopped) because a subtest did
	for _, f := range append(append([]key{}, failures...), unfinished...) {
		for i := strings.LastIndexByte(f.test, '/'); i > 0; i = strings.LastIndexByte(f.test[:i], '/') {
			parents[key{f.pkg, f.test[:i]}] = true
		}
	}
	fmt.Fprintf(w, "\n=== RECAP: %d failed, %d never finished\n", len(failures), len(unfinished))
	// Packages and parents first, the tests that failed themselves last:
	// a log's tail shows those.
	for _, f := range failures {
		if f.test == "" {
			fmt.Fprintf(w, "FAIL package %s\n", f.pkg)
		}
	}
	for _, p := range builds {
		fmt.Fprintf(w, "build output of %s\n", p)
		writeCapped(w, build[p])
	}
	for _, f := range append(append([]key{}, failures...), unfinished...) {
		if f.test != "" && parents[f] {
			l := logs[f]
			fmt.Fprintf(w, "--- FAIL: %s (a subtest failed; the last %d of its own %d log lines)\n", f.test, min(parentLines, len(l)), len(l))
			for _, s := range l[max(0, len(l)-parentLines):] {
				fmt.Fprintln(w, s)
			}
		}
	}
	for _, f := range unfinished {
		if !parents[f] {
			fmt.Fprintf(w, "--- NEVER FINISHED: %s (a timeout, a panic or os.Exit; all it printed)\n", f.test)
			writeCapped(w, printed[f])
		}
	}
	var why []string
	for _, f := range failures {
		if f.test != "" && !parents[f] {
			fmt.Fprintf(w, "--- FAIL: %s\n", f.test)
			writeCapped(w, logs[f])
			why = append(why, f.test)
			for _, h := range headers(logs[f]) {
				why = append(why, "  "+h)
			}
		}
	}
	for _, f := range unfinished {
		if !parents[f] {
			why = append(why, f.test+" (never finished)")
		}
	}
	// The last lines of all: the tests that failed themselves, each with
	// the first line of its last few log entries. A CI page that keeps
	// only a log's tail shows why, even after a long log.
	fmt.Fprintf(w, "=== WHY: the tests that failed themselves, with their last %d log entries' first lines\n", whyEntries)
	for _, s := range why {
		fmt.Fprintln(w, s)
	}
	return true, nil
}

// whyEntries log entries per failed test, each cut to whyWidth bytes, end
// the recap.
const whyEntries, whyWidth = 3, 300

// headers is the first line of each of the last whyEntries log entries in
// l (a t.Log or t.Error call: a line "    file_test.go:N: …"; its
// continuation lines are indented further).
func headers(l []string) []string {
	var h []string
	for _, s := range l {
		if strings.HasPrefix(s, "    ") && !strings.HasPrefix(s, "     ") {
			s = strings.TrimSpace(s)
			if len(s) > whyWidth {
				s = strings.ToValidUTF8(s[:whyWidth], "") + " …"
			}
			h = append(h, s)
		}
	}
	return h[max(0, len(h)-whyEntries):]
}

func writeCapped(w io.Writer, l []string) {
	if len(l) > maxLines {
		l = append(append(l[:head:head], fmt.Sprintf("    [... %d lines ...]", len(l)-head-tail)), l[len(l)-tail:]...)
	}
	for _, s := range l {
		fmt.Fprintln(w, s)
	}
}

// isLog tells a test's own log line (t.Log, t.Error, t.Fatal, and their
// continuation lines, all indented) from go test's framing (=== RUN,
// --- PASS, PASS, ok) and from what the test process printed itself.
func isLog(s string) bool {
	return strings.HasPrefix(s, "    ") && !strings.HasPrefix(strings.TrimLeft(s, " "), "--- ")
}
