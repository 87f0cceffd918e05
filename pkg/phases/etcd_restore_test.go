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

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/transport"
)

// restoreRun is the HA example with a snapshot in the state dir and fake
// hosts whose etcd runs.
func restoreRun(t *testing.T, dryRun bool) (*engine.Run, map[string]*transport.Fake, *events.Collect, string) {
	t.Helper()
	c, st := loadExample(t, "ha.yaml")
	fakes := map[string]*transport.Fake{}
	for _, h := range c.Spec.Hosts {
		fakes[h.Name] = transport.NewFake(h.Name).Respond("systemctl is-enabled etcd", "enabled\nactive\n")
	}
	snap := filepath.Join(st.Path("backups", "etcd"), "backup-20261201T070000Z.db")
	body := []byte("an etcd snapshot")
	sum := sha256.Sum256(body)
	if err := st.WriteFile(snap, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteFile(snap+".sha256", []byte(hex.EncodeToString(sum[:])+"  backup-20261201T070000Z.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := state.OpenJournal(st.Journal(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	coll := &events.Collect{}
	r := &engine.Run{Cluster: c, State: st, Journal: j, DryRun: dryRun, Events: events.NewEmitter("test", coll),
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return fakes[h.Name], nil },
		Options: engine.Options{Now: func() time.Time { return time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC) }}}
	return r, fakes, coll, snap
}

func restorePhases(x *EtcdRestoration) []engine.Phase {
	return []engine.Phase{&EtcdRestoreCheck{X: x}, &EtcdRestoreStopAPI{X: x}, &EtcdRestoreSwap{X: x},
		&EtcdRestoreStart{X: x}, &EtcdRestoreStartAPI{X: x}, &EtcdRestoreKubelets{X: x}}
}

func planned(coll *events.Collect) []string {
	var out []string
	for _, ev := range coll.Events {
		if ev.Type == events.Change && ev.Action == "planned" {
			out = append(out, ev.Phase+" "+ev.Host+": "+ev.Message)
		}
	}
	return out
}

// The dry run shows every step of every host in order, from the same plan
// the restore applies, and changes nothing: no script runs, no file is
// copied, the journal records no restore.
func TestEtcdRestoreDryRun(t *testing.T) {
	r, fakes, coll, _ := restoreRun(t, true)
	x := &EtcdRestoration{From: "latest"}
	if _, err := (&engine.Engine{Run: r, Phases: restorePhases(x)}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := planned(coll)
	want := []string{
		"etcd-restore master1: create /var/lib/k4t/snapshots/restore-20261201T080000Z.db",
		"etcd-restore master1: restore backup-20261201T070000Z.db into /var/lib/etcd.restore-20261201T080000Z",
		"etcd-restore-stop-api master3: stop kube-apiserver",
		"etcd-restore-swap master2: stop etcd, move /var/lib/etcd aside to /var/lib/etcd.before-restore-20261201T080000Z",
		"etcd-restore-start master1: start etcd",
		"etcd-restore-start-api master2: start the control plane again",
		"etcd-restore-kubelets master3: remove the snapshot's copy",
		"etcd-restore-kubelets worker2: restart kubelet",
	}
	all := strings.Join(got, "\n")
	last := -1
	for _, w := range want {
		i := strings.Index(all, w)
		if i < 0 {
			t.Errorf("no %q in the plan:\n%s", w, all)
			continue
		}
		if i < last {
			t.Errorf("%q out of order in:\n%s", w, all)
		}
		last = i
	}
	for name, f := range fakes {
		for _, c := range f.Commands() {
			if strings.Contains(c, "sh -s") || strings.Contains(c, "systemctl start") || strings.Contains(c, "rm ") {
				t.Errorf("%s ran %q in a dry run", name, c)
			}
		}
		if _, ok := f.File("/var/lib/k4t/snapshots/restore-20261201T080000Z.db"); ok {
			t.Errorf("%s got the snapshot in a dry run", name)
		}
	}
	if p, _ := RestorePending(r); p != "" {
		t.Errorf("the dry run recorded a restore: %q", p)
	}
}

// A snapshot that does not match its sha256 file is refused before any
// host is asked anything.
func TestEtcdRestoreRefusesDamagedSnapshot(t *testing.T) {
	r, fakes, _, snap := restoreRun(t, false)
	b, _ := os.ReadFile(snap)
	b[3] ^= 0x01
	os.WriteFile(snap, b, 0o600)
	x := &EtcdRestoration{From: snap}
	_, err := (&engine.Engine{Run: r, Phases: restorePhases(x)}).Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not match its sha256 file") || !strings.Contains(err.Error(), "nothing was stopped") {
		t.Fatalf("err = %v", err)
	}
	for name, f := range fakes {
		if cs := f.Commands(); len(cs) > 0 {
			t.Errorf("%s was asked %q", name, cs)
		}
	}
}

// A restore that stopped after every member was swapped is finished by the
// next run with the same snapshot: same restore, no member restored or
// stopped again, no control plane paused again; the control planes come
// back and the kubelets restart. Other commands refuse meanwhile.
func TestEtcdRestoreResumes(t *testing.T) {
	r, fakes, coll, snap := restoreRun(t, true)
	b, _ := os.ReadFile(snap)
	sum := sha256.Sum256(b)
	if err := r.Journal.Record("", restorePhase, state.Intent, restoreKey, "20261201T063000Z "+hex.EncodeToString(sum[:])+" "+snap); err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Cluster.EtcdMembers() {
		fakes[m.Name].Respond("cat /var/lib/k4t/etcd-restore-id", "20261201T063000Z\n")
	}
	pf := &Preflight{}
	if err := pf.Check(context.Background(), r); err == nil || !strings.Contains(err.Error(), "k4t etcd restore --from "+snap) {
		t.Errorf("preflight of another command: %v", err)
	}
	x := &EtcdRestoration{From: "latest"}
	if _, err := (&engine.Engine{Run: r, Phases: restorePhases(x)}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !x.Resumed || x.ID != "20261201T063000Z" {
		t.Errorf("resumed %v, id %s", x.Resumed, x.ID)
	}
	all := strings.Join(planned(coll), "\n")
	for _, no := range []string{"etcd-restore ", "etcd-restore-stop-api", "etcd-restore-swap", "etcd-restore-start "} {
		if strings.Contains(all, no) {
			t.Errorf("planned %q again:\n%s", no, all)
		}
	}
	for _, yes := range []string{"etcd-restore-start-api master1", "etcd-restore-kubelets worker1: restart kubelet"} {
		if !strings.Contains(all, yes) {
			t.Errorf("no %q in:\n%s", yes, all)
		}
	}
}

// After a failure, each member's state is named: restored or not, etcd's
// state, and the data dirs moved aside.
func TestEtcdRestoreMemberStates(t *testing.T) {
	r, fakes, _, _ := restoreRun(t, false)
	x := &EtcdRestoration{ID: "20261201T080000Z"}
	fakes["master1"].Respond("cat /var/lib/k4t/etcd-restore-id", "20261201T080000Z\nactive\n/var/lib/etcd.before-restore-20261201T080000Z\n")
	fakes["master2"].Respond("cat /var/lib/k4t/etcd-restore-id", "none\ninactive\n")
	fakes["master3"].Fail("cat /var/lib/k4t/etcd-restore-id", 255, "connection lost")
	got := strings.Join(x.MemberStates(context.Background(), r), "\n")
	for _, want := range []string{
		"master1: the restored data, etcd active; moved aside: /var/lib/etcd.before-restore-20261201T080000Z",
		"master2: its earlier data (not swapped yet), etcd inactive; moved aside: none",
		"master3: ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
}
