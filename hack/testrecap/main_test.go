package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRecap(t *testing.T) {
	in := `make: building
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    harness.go:1: lab up\n"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"=== RUN   TestA/sub\n"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"FIGURE x: 1s\n"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    reset_test.go:44: master4 after the reset:\n"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"        left /run/k4t\n"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    --- FAIL: TestA/sub (1.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestA/sub"}
{"Action":"output","Package":"p","Test":"TestA/ok","Output":"    x_test.go:1: fine\n"}
{"Action":"pass","Package":"p","Test":"TestA/ok"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- FAIL: TestA (2.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestA"}
{"Action":"fail","Package":"p"}
`
	var out bytes.Buffer
	failed, err := recap(strings.NewReader(in), &out)
	if err != nil || !failed {
		t.Fatalf("recap: failed %v, err %v", failed, err)
	}
	got := out.String()
	for _, want := range []string{
		"make: building\n=== RUN   TestA\n", // passed through, in order
		"FIGURE x: 1s\n",
		"=== RECAP: 3 failed, 0 never finished",
		"FAIL package p\n--- FAIL: TestA (a subtest failed; the last 1 of its own 1 log lines)\n    harness.go:1: lab up\n--- FAIL: TestA/sub\n    reset_test.go:44: master4 after the reset:\n        left /run/k4t\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if want := "=== WHY: the tests that failed themselves, with their last 3 log entries' first lines\nTestA/sub\n  reset_test.go:44: master4 after the reset:\n"; !strings.HasSuffix(got, want) {
		t.Errorf("output does not end with %q:\n%s", want, got)
	}
	if strings.Contains(got[strings.Index(got, "RECAP"):], "fine") {
		t.Errorf("a passed test's log is in the recap:\n%s", got)
	}
}

func TestRecapPassed(t *testing.T) {
	failed, err := recap(strings.NewReader(`{"Action":"pass","Package":"p"}`+"\n"), &bytes.Buffer{})
	if err != nil || failed {
		t.Fatalf("failed %v, err %v", failed, err)
	}
}

func TestRecapLongLog(t *testing.T) {
	var in strings.Builder
	for i := range 100 {
		in.WriteString(`{"Action":"output","Package":"p","Test":"T","Output":"    l` + string(rune('a'+i%26)) + `\n"}` + "\n")
	}
	in.WriteString(`{"Action":"fail","Package":"p","Test":"T"}` + "\n")
	var out bytes.Buffer
	recap(strings.NewReader(in.String()), &out)
	r := out.String()[strings.Index(out.String(), "RECAP"):]
	if n := strings.Count(r, "\n    l"); n != head+tail {
		t.Errorf("%d log lines repeated, want %d:\n%s", n, head+tail, r)
	}
	mustHave := "[... 40 lines ...]"
	if !strings.Contains(r, mustHave) {
		t.Errorf("no %q:\n%s", mustHave, r)
	}
}

// A test stopped by -timeout gets no fail event: it is listed as never
// finished, with the panic go test printed under its name.
func TestRecapTimeout(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestSlow"}
{"Action":"output","Package":"p","Test":"TestSlow","Output":"=== RUN   TestSlow\n"}
{"Action":"output","Package":"p","Test":"TestSlow","Output":"    slow_test.go:9: waiting\n"}
{"Action":"output","Package":"p","Test":"TestSlow","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"p","Test":"TestSlow","Output":"\trunning tests:\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t1.0s\n"}
{"Action":"fail","Package":"p"}
`
	var out bytes.Buffer
	failed, _ := recap(strings.NewReader(in), &out)
	want := "=== RECAP: 1 failed, 1 never finished\nFAIL package p\n--- NEVER FINISHED: TestSlow (a timeout, a panic or os.Exit; all it printed)\n    slow_test.go:9: waiting\npanic: test timed out after 1s\n\trunning tests:\n"
	if !failed || !strings.Contains(out.String(), want) {
		t.Errorf("failed %v; output lacks %q:\n%s", failed, want, out.String())
	}
}

// A package that does not build: the compiler's errors are in the recap.
func TestRecapBuildFailure(t *testing.T) {
	in := `{"ImportPath":"p [p.test]","Action":"build-output","Output":"# p\n"}
{"ImportPath":"p [p.test]","Action":"build-output","Output":"./x_test.go:3:2: undefined: nope\n"}
{"ImportPath":"p [p.test]","Action":"build-fail"}
{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Output":"FAIL\tp [build failed]\n"}
{"Action":"fail","Package":"p","FailedBuild":"p [p.test]"}
`
	var out bytes.Buffer
	failed, _ := recap(strings.NewReader(in), &out)
	want := "FAIL package p\nbuild output of p [p.test]\n# p\n./x_test.go:3:2: undefined: nope\n"
	if !failed || !strings.Contains(out.String(), want) {
		t.Errorf("failed %v; output lacks %q:\n%s", failed, want, out.String())
	}
}
