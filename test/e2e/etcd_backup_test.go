package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
)

// etcdBackup: `k4t etcd backup` leaves one snapshot in the state dir,
// 0600, whose sha256 file matches it (etcdutl checked it on the host).
func (e *env) etcdBackup(t *testing.T) {
	r := e.k4t("etcd", "backup", "-f", e.inv)
	if r.code != 0 {
		t.Fatalf("etcd backup: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 20))
	}
	dbs, _ := filepath.Glob(filepath.Join(e.stateDir, "clusters", "lab", "backups", "etcd", "backup-*.db"))
	if len(dbs) != 1 {
		t.Fatalf("%d backup snapshot(s) in the state dir, want 1", len(dbs))
	}
	size := snapshotVerified(t, dbs[0])
	fmt.Printf("FIGURE etcd-backup: %s, %d bytes, in %s; %s\n", filepath.Base(dbs[0]), size, r.duration.Round(1e6), lastLine(r.stderr))
}
