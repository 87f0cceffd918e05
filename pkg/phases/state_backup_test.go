package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/schedule"
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

	// Scheduled runs (--due, every tick = 2m): a changed state dir goes to a
	// target once waiting for the next run would make its copy later than
	// its every; a target whose copy is current is not even connected to.
	r.State.WriteFile(r.State.Path("hosts.yaml"), []byte("changed"), 0o644)
	now := r.Now()
	for _, step := range []struct {
		after        time.Duration
		due, written int
	}{{time.Minute, 1, 1}, {3 * time.Minute, 0, 0}, {59 * time.Minute, 1, 1}} { // master1 (2m), nothing new, worker1 (1h)
		r.Options.Now = func() time.Time { return now.Add(step.after) }
		due := &StateBackup{Due: true}
		if got := len(due.Hosts(r)); got != step.due {
			t.Errorf("after %s: %d target(s) due, want %d", step.after, got, step.due)
		}
		if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{due}}).Execute(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(due.Written) != step.written {
			t.Errorf("after %s: written %v", step.after, due.Written)
		}
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

// The scheduled job ticks at the shortest `every`, stepped down to one cron
// can count.
func TestStateBackupTick(t *testing.T) {
	for _, tc := range []struct {
		every []time.Duration
		want  time.Duration
	}{
		{[]time.Duration{2 * time.Minute, time.Hour}, 2 * time.Minute},
		{[]time.Duration{7 * time.Minute}, 6 * time.Minute},
		{[]time.Duration{90 * time.Minute, 5 * time.Hour}, time.Hour},
		{[]time.Duration{5 * time.Hour}, 4 * time.Hour},
		{[]time.Duration{48 * time.Hour}, 48 * time.Hour},
		{[]time.Duration{time.Minute}, time.Minute},
	} {
		var ts []v1alpha1.StateBackupTarget
		for _, e := range tc.every {
			ts = append(ts, v1alpha1.StateBackupTarget{Host: "h", Every: v1alpha1.Duration{Duration: e}})
		}
		if got := StateBackupTick(ts); got != tc.want {
			t.Errorf("%v: tick %s, want %s", tc.every, got, tc.want)
		}
	}
}

// --schedule: the job script runs `state backup --due`; the cron entry
// ticks at the shortest `every`; --remove takes both away.
func TestStateScheduleCron(t *testing.T) {
	st, _ := scheduleEnv(t)
	s := &schedule.Scheduler{Root: t.TempDir(), InitName: func() string { return "bash" },
		CronDaemon: func() (string, bool) { return "/usr/sbin/cron", true }}
	j := StateBackupJob(st, "lab", "/usr/local/bin/k4t", "/root/.k4t", "/root/hosts.yaml", 2*time.Minute)
	info, warn, err := InstallStateSchedule(context.Background(), s, st, j)
	if err != nil || warn != "" || info.Schedule == "" || info.Every != "2m" {
		t.Fatalf("install: %+v %q %v", info, warn, err)
	}
	cron, _ := os.ReadFile(filepath.Join(s.Root, "etc/cron.d/k4t-state-backup-lab"))
	script, _ := os.ReadFile(StateJobPath(st))
	if !strings.Contains(string(cron), info.Schedule+" root "+StateJobPath(st)) || !strings.Contains(string(script), "state backup --due -f '/root/hosts.yaml'") {
		t.Errorf("cron:\n%s\nscript:\n%s", cron, script)
	}
	stt, err := StateScheduleStatus(context.Background(), s, st, "lab", time.Now())
	if err != nil || !stt.Installed || stt.NextRun == "" {
		t.Errorf("status %+v %v", stt, err)
	}
	removed, err := RemoveStateSchedule(context.Background(), s, st, "lab")
	if err != nil || len(removed) != 3 {
		t.Errorf("removed %v %v", removed, err)
	}
}
