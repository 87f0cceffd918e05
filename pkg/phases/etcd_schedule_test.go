package phases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// --schedule puts the script, service and timer on every member, each
// member's timer at its own offset, and starts the timer; a second run
// changes nothing.
func TestEtcdSnapshotSchedule(t *testing.T) {
	r, fakes, _, _ := restoreRun(t, false)
	sched := &EtcdSnapshotSchedule{Every: time.Hour, Keep: 24}
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{sched}}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	offsets := map[string]bool{}
	for _, m := range []string{"master1", "master2", "master3"} {
		f := fakes[m]
		tmr, ok := f.File(snapshotTimerPath)
		if !ok {
			t.Fatalf("%s: no timer", m)
		}
		for _, l := range strings.Split(string(tmr.Content), "\n") {
			if strings.HasPrefix(l, "OnActiveSec=") {
				offsets[l] = true
			}
		}
		if s, ok := f.File(templates.EtcdSnapshotScriptPath); !ok || s.Mode != 0o700 || !strings.Contains(string(s.Content), "scheduled-"+m+"-") {
			t.Errorf("%s: script %v %o", m, ok, s.Mode)
		}
		if cmds := strings.Join(f.Commands(), "\n"); !strings.Contains(cmds, "systemctl enable k4t-etcd-snapshot.timer") {
			t.Errorf("%s: the timer was not enabled:\n%s", m, cmds)
		}
	}
	if len(offsets) != 3 {
		t.Errorf("members share offsets: %v", offsets)
	}
	if _, ok := fakes["worker1"].File(snapshotTimerPath); ok {
		t.Error("a worker got the timer")
	}
}

// --collect copies each member's newest scheduled snapshot once, checked
// against the sha256 the member wrote; a copy whose sum is wrong is refused.
func TestEtcdSnapshotCollect(t *testing.T) {
	r, fakes, _, _ := restoreRun(t, false)
	for _, m := range []string{"master1", "master2", "master3"} {
		f := fakes[m]
		var names []string
		for _, ts := range []string{"20261201T060000Z", "20261201T070000Z"} {
			name := "scheduled-" + m + "-" + ts + ".db"
			body := []byte("snapshot of " + m + " at " + ts)
			sum := sha256.Sum256(body)
			if m == "master3" && ts == "20261201T070000Z" {
				sum[0] ^= 1 // master3's newest does not match its sum
			}
			f.SetFile(transport.File{Path: templates.EtcdSnapshotDir + "/" + name, Content: body})
			f.SetFile(transport.File{Path: templates.EtcdSnapshotDir + "/" + name + ".sha256", Content: []byte(hex.EncodeToString(sum[:]) + "  " + name + "\n")})
			names = append(names, name, name+".sha256")
		}
		f.Respond("ls -1 "+templates.EtcdSnapshotDir, strings.Join(names, "\n")+"\nlast-run.json\n")
	}
	col := &EtcdSnapshotCollect{Keep: 2}
	_, err := (&engine.Engine{Run: r, Phases: []engine.Phase{col}}).Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), "master3") || !strings.Contains(err.Error(), "does not match its sha256 file") {
		t.Fatalf("err = %v", err)
	}
	dir := SnapshotDir(r)
	for _, m := range []string{"master1", "master2"} {
		if _, err := os.Stat(filepath.Join(dir, "scheduled-"+m+"-20261201T070000Z.db")); err != nil {
			t.Errorf("%s's newest not collected: %v", m, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "scheduled-"+m+"-20261201T060000Z.db")); err == nil {
			t.Errorf("%s's older snapshot collected too", m)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "scheduled-master3-20261201T070000Z.db")); err == nil {
		t.Error("master3's damaged snapshot was collected")
	}
	// Collected ones are not collected again.
	col = &EtcdSnapshotCollect{Keep: 2}
	plans := 0
	for _, m := range r.Cluster.EtcdMembers()[:2] {
		cs, err := col.Plan(context.Background(), &engine.HostCtx{Host: m, Run: r, Conn: fakes[m.Name]})
		if err != nil {
			t.Fatal(err)
		}
		plans += len(cs)
	}
	if plans != 0 {
		t.Errorf("%d change(s) to collect again", plans)
	}
}
