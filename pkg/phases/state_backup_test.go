package phases

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/state"
)

// Two targets get a sealed copy in a 0700 dir; a second backup with the same
// content writes none; a restore into an empty state dir brings the CA back
// and refuses a state dir that has one.
func TestStateBackupAndRestore(t *testing.T) {
	r, fakes, _, _ := restoreRun(t, false)
	r.Cluster.Spec.StateBackup.Targets = []v1alpha1.StateBackupTarget{
		{Host: "master1", Every: v1alpha1.Duration{Duration: 2 * time.Minute}, Keep: 30},
		{Host: "worker1", Every: v1alpha1.Duration{Duration: time.Hour}, Keep: 48},
	}
	r.State.WriteFile(r.State.Path("pki", "ca.crt"), []byte("the CA"), 0o644)
	b := &StateBackup{}
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{b}}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.Identity == "" || len(b.Written) != 2 {
		t.Fatalf("identity %q, written %v", b.Identity, b.Written)
	}
	dir := StateBackupDir("ha")
	copyPath := dir + "/state-20261201T080000Z.tar.gz.age"
	f, ok := fakes["master1"].File(copyPath)
	if !ok || f.Mode != 0o600 || strings.Contains(string(f.Content), "the CA") {
		t.Fatalf("master1's copy: %v %o", ok, f.Mode)
	}
	if cmds := strings.Join(fakes["worker1"].Commands(), "\n"); !strings.Contains(cmds, "chmod 700 '"+dir) || !strings.Contains(cmds, "head -n -48") {
		t.Errorf("worker1's commands:\n%s", cmds)
	}
	again := &StateBackup{}
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{again}}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again.Identity != "" || len(again.Written) != 0 {
		t.Errorf("a backup with nothing changed: identity %q, written %v", again.Identity, again.Written)
	}

	// A lost bastion: a fresh state dir, the identity kept elsewhere.
	identity, _ := os.ReadFile(r.State.Path(state.BackupIdentityFile))
	if _, _, err := RestoreState(context.Background(), r, r.Cluster.Host("master1"), time.Time{}, identity); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("a restore over a live state dir: %v", err)
	}
	fresh, err := state.Open(t.TempDir(), "ha")
	if err != nil {
		t.Fatal(err)
	}
	r.State = fresh
	fakes["master1"].Respond("cd '"+dir, fmt.Sprintf("state-20261201T080000Z.tar.gz.age %d\n", len(f.Content)))
	c, n, err := RestoreState(context.Background(), r, r.Cluster.Host("master1"), time.Time{}, identity)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(fresh.Path("pki", "ca.crt")); string(b) != "the CA" || n < 2 || c.File != copyPath {
		t.Errorf("restored %d files from %s; ca.crt %q", n, c.File, b)
	}
}
