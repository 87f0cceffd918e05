package main

import (
	"strings"
	"testing"
)

func TestStateBackupUsage(t *testing.T) {
	inv := inventory(t, 1, "keyFile: /nonexistent")
	state := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"state", "backup", "--schedule", "--remove", "-f", inv}, "one at a time"},
		{[]string{"state", "backup", "--schedule", "--due", "-f", inv}, "one at a time"},
		{[]string{"state", "backup", "--schedule", "-f", inv}, "spec.stateBackup has no targets"},
	} {
		out, code := k4tRun(t, append([]string{"--state-dir", state}, tc.args...)...)
		if code != exitUsage || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q\n%s", tc.args, code, exitUsage, tc.want, out)
		}
	}
	out, code := k4tRun(t, "--state-dir", state, "state", "backup", "--status", "-f", inv)
	if code != 0 || !strings.Contains(out, "not installed (install it with `k4t state backup --schedule") || !strings.Contains(out, "last run: never") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
}
