// Package testenv lets a test that needs a real tool (haproxy, keepalived,
// sshd, openssl, kubeadm, etcd, root) say so: where the tool is missing the
// test is skipped on a developer's machine but fails in CI (CI=true), so a
// check never silently stops running there.
package testenv

import (
	"os"
	"testing"
)

// Missing reports that what the test needs is not here: a skip locally, a
// failure when CI=true. The message says how to get it.
func Missing(t testing.TB, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("needed in CI: "+format, a...)
	}
	t.Skipf(format, a...)
}
