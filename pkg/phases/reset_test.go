package phases

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/transport"
)

// A reset runs each tier's share of the script on that tier's hosts, in
// order; hosts with nothing left are not touched; the state dir moves to
// an archive and a fresh one keeps known_hosts.
func TestResetTierByTier(t *testing.T) {
	c, st := loadExample(t, "ha.yaml")
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fakes := map[string]*transport.Fake{}
	for _, h := range c.Spec.Hosts {
		f := transport.NewFake(h.Name)
		if h.Name != "worker2" { // worker2 was reset by an earlier, interrupted run
			f.Respond("[ -e ", "left\n")
		}
		fakes[h.Name] = f
	}
	os.MkdirAll(st.PKI(), 0o700)
	if err := os.WriteFile(filepath.Join(st.PKI(), "ca.crt"), []byte("a CA"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.KnownHosts(), []byte("10.77.0.11 ssh-ed25519 AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	coll := &events.Collect{}
	r := &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("test", coll),
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return fakes[h.Name], nil },
		Options: engine.Options{Now: func() time.Time { return now }}}
	phases := []engine.Phase{ResetWorkers(), ResetMasters(), ResetEtcd(), ResetSLB(), ResetOS(), &ResetState{}}
	if _, err := (&engine.Engine{Run: r, Phases: phases}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, ev := range coll.Events {
		if ev.Type == events.Change && ev.Action == "applied" {
			order = append(order, ev.Phase+" "+ev.Host)
		}
	}
	got := strings.Join(order, "\n")
	for _, w := range []string{"reset-workers worker1", "reset-masters master1", "reset-etcd master3", "reset-slb slb2", "reset-os worker1"} {
		if !strings.Contains(got, w) {
			t.Errorf("no %q in:\n%s", w, got)
		}
	}
	if strings.Contains(got, "reset-workers worker2") {
		t.Error("worker2 had nothing left and was reset again")
	}
	if i, j := strings.Index(got, "reset-workers"), strings.Index(got, "reset-masters"); i > j {
		t.Error("masters before workers")
	}
	// what each tier ran
	w1 := strings.Join(fakes["worker1"].Commands(), "\n")
	if !strings.Contains(w1, "sh -s") {
		t.Errorf("worker1 ran no reset script:\n%s", w1)
	}
	archive := st.Root + ".reset-20261201T100000Z"
	if _, err := os.Stat(filepath.Join(archive, "pki", "ca.crt")); err != nil {
		t.Errorf("no archive with the CAs: %v", err)
	}
	if b, err := os.ReadFile(st.KnownHosts()); err != nil || !strings.Contains(string(b), "ssh-ed25519") {
		t.Errorf("known_hosts not kept in the fresh state dir: %q %v", b, err)
	}
	if _, err := os.Stat(st.PKI()); !os.IsNotExist(err) {
		t.Errorf("the fresh state dir has a pki: %v", err)
	}
	// A second reset finds no cluster in the state dir: no second archive.
	os.MkdirAll(st.PKI(), 0o700) // as opening the state dir does
	now = now.Add(time.Minute)
	if err := (&ResetState{}).Check(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if archives, _ := filepath.Glob(st.Root + ".reset-*"); len(archives) != 1 {
		t.Errorf("archives %v, want one", archives)
	}
}
