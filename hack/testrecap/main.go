// Command testrecap reads `go test -json` on stdin, prints the test output
// as `go test -v` would, and ends with a recap of every failed test: its
// name and the lines it logged, so the end of a long CI log says why the
// run failed, not only which test did. Lines that are not JSON (a build
// error, make's own output) pass through as they are.
//
//	go test -json ./test/e2e | go run ./hack/testrecap
//
// It exits 1 when a test or a package failed, and 0 otherwise; with
// `set -o pipefail`, go test's own exit status wins when it is not 0.
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
	Action  string
	Package string
	Test    string
	Output  string
}

// A failed test's log is repeated whole up to maxLines; a longer one as
// its first head and last tail lines (t.Error may be early, t.Fatal is last).
const maxLines, head, tail = 60, 20, 40

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

// recap copies the output of the test run in r to w, then the recap of the
// failed tests; it says whether anything failed.
func recap(r io.Reader, w io.Writer) (bool, error) {
	logs := map[string][]string{} // test -> its own log lines (not its subtests')
	var failures []string         // tests and packages, in the order they failed
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			io.WriteString(w, e.Output)
			if e.Test != "" && isLog(e.Output) {
				logs[key] = append(logs[key], strings.TrimRight(e.Output, "\n"))
			}
		case "fail":
			failures = append(failures, key)
		}
	}
	if err := sc.Err(); err != nil {
		return len(failures) > 0, err
	}
	if len(failures) == 0 {
		return false, nil
	}
	parents := map[string]bool{} // tests that failed because a subtest did
	for _, f := range failures {
		pkg, test, _ := strings.Cut(f, " ")
		for i := strings.LastIndexByte(test, '/'); i > 0; i = strings.LastIndexByte(test[:i], '/') {
			parents[pkg+" "+test[:i]] = true
		}
	}
	fmt.Fprintf(w, "\n=== RECAP: %d failed (tests with their own log lines; parents' and subtests' apart)\n", len(failures))
	for _, f := range failures {
		pkg, test, _ := strings.Cut(f, " ")
		if test == "" {
			fmt.Fprintf(w, "FAIL package %s\n", pkg)
			continue
		}
		l := logs[f]
		if parents[f] {
			fmt.Fprintf(w, "--- FAIL: %s (a subtest failed; its own log: %d lines, the last 5 below)\n", test, len(l))
			l = l[max(0, len(l)-5):]
		} else {
			fmt.Fprintf(w, "--- FAIL: %s\n", test)
		}
		if len(l) > maxLines {
			l = append(append(l[:head:head], fmt.Sprintf("    [... %d lines ...]", len(l)-head-tail)), l[len(l)-tail:]...)
		}
		for _, s := range l {
			fmt.Fprintln(w, s)
		}
	}
	return true, nil
}

// isLog tells a test's own log line (t.Log, t.Error, t.Fatal, and their
// continuation lines, all indented) from go test's framing (=== RUN,
// --- PASS, PASS, ok) and from what the test process printed itself.
func isLog(s string) bool {
	return strings.HasPrefix(s, "    ") && !strings.HasPrefix(strings.TrimLeft(s, " "), "--- ")
}
