package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A copy holds the state dir but its logs, snapshots and backup record; the
// same tree gives the same hash; it opens only with the cluster's identity
// and unpacks with its modes.
func TestArchiveSealRoundTrip(t *testing.T) {
	d, err := Open(t.TempDir(), "lab")
	if err != nil {
		t.Fatal(err)
	}
	d.WriteFile(d.Path("pki", "ca.key"), []byte("the CA key"), 0o600)
	d.WriteFile(d.Path("hosts.yaml"), []byte("hosts"), 0o644)
	d.WriteFile(d.Path("logs", "run.log"), []byte("a log"), 0o600)
	d.WriteFile(d.Path("backups", "etcd", "backup.db"), []byte("a snapshot"), 0o600)
	d.WriteFile(d.Path(BackupRecord), []byte("{}"), 0o600)
	rcpt, identity, created, err := d.BackupRecipient()
	if err != nil || !created || !strings.Contains(identity, "AGE-SECRET-KEY-") {
		t.Fatalf("identity: %v %v %q", err, created, identity)
	}
	if _, again, created, _ := d.BackupRecipient(); created || again != identity {
		t.Error("a second call made another identity")
	}
	a1, h1, err := d.Archive()
	if err != nil {
		t.Fatal(err)
	}
	d.WriteFile(d.Path("logs", "run2.log"), []byte("another log"), 0o600)
	d.WriteFile(d.Path(BackupRecord), []byte(`{"x":1}`), 0o600)
	d.WriteFile(d.Path("state-backup.status.json"), []byte(`{"exitCode":0}`), 0o600)
	d.WriteFile(d.Path("state-backup-job.lock"), nil, 0o600)
	d.WriteFile(d.Path("state-backup-job.sh"), []byte("#!/bin/sh"), 0o700)
	d.WriteFile(d.Path("pki", ".ca.crt.tmp-123"), []byte("half"), 0o600)
	_, h2, _ := d.Archive()
	if h1 != h2 {
		t.Error("logs, the backup record, a job's last result or a lock changed the hash")
	}
	d.WriteFile(d.Path("hosts.yaml"), []byte("hosts, changed"), 0o644)
	if _, h3, _ := d.Archive(); h3 == h1 {
		t.Error("a changed file kept the hash")
	}
	sealed, err := Seal(a1, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "the CA key") {
		t.Fatal("the sealed copy holds the CA key in clear")
	}
	other, _ := Open(t.TempDir(), "other")
	_, otherID, _, _ := other.BackupRecipient()
	if _, err := Unseal(sealed, []byte(otherID)); err == nil {
		t.Error("another cluster's identity opened the copy")
	}
	plain, err := Unseal(sealed, []byte(identity))
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := Open(t.TempDir(), "lab")
	n, err := fresh.Extract(plain)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(fresh.Path("pki", "ca.key")); string(b) != "the CA key" {
		t.Errorf("ca.key after the restore: %q", b)
	}
	if fi, err := os.Stat(fresh.Path("pki", "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v %v", fi.Mode(), err)
	}
	for _, gone := range []string{filepath.Join("logs", "run.log"), filepath.Join("backups", "etcd", "backup.db"), BackupRecord} {
		if _, err := os.Stat(fresh.Path(gone)); err == nil {
			t.Errorf("%s was in the copy", gone)
		}
	}
	if n != 3 { // ca.key, hosts.yaml, the identity
		t.Errorf("%d files restored, want 3", n)
	}
}
