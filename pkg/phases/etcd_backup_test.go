package phases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/transport"
)

// `k4t etcd backup` snapshots a follower (master1 leads), checks the
// snapshot, copies it with its sha256 into the state dir, removes the
// host's copy and keeps the newest N snapshots.
func TestEtcdBackup(t *testing.T) {
	c, st := loadExample(t, "ha.yaml")
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fakes := map[string]*transport.Fake{}
	for i, m := range c.EtcdMembers() {
		fakes[m.Name] = transport.NewFake(m.Name)
		// master1 leads; master2 answers as a follower.
		fakes[m.Name].Respond("ETCDCTL_API=3 etcdctl", fmt.Sprintf(`[{"Endpoint":"https://%s:2379","Status":{"header":{"member_id":%d},"leader":1}}]`, m.InternalAddress, i+1)+"\n")
	}
	for _, h := range c.Spec.Hosts {
		if fakes[h.Name] == nil {
			fakes[h.Name] = transport.NewFake(h.Name)
		}
	}
	snap := []byte("an etcd snapshot")
	sum := sha256.Sum256(snap)
	remote := "/var/lib/k4t/snapshots/backup-20261201T100000Z.db"
	fakes["master2"].SetFile(transport.File{Path: remote, Mode: 0o600, Content: snap})
	fakes["master2"].Respond("sha256sum < ", hex.EncodeToString(sum[:])+"  -\n")
	fakes["master2"].Respond("etcdutl snapshot status", `{"hash":1,"revision":42,"totalKey":7,"totalSize":16}`+"\n")

	r := &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("test"),
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return fakes[h.Name], nil },
		Options: engine.Options{Now: func() time.Time { return now }}}
	dir := SnapshotDir(r)
	for _, old := range []string{"backup-20261101T000000Z.db", "backup-20261110T000000Z.db", "pre-upgrade-v1.37.2-20261020T000000Z.db"} {
		if err := st.WriteFile(filepath.Join(dir, old), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := &EtcdBackup{Keep: 2}
	if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{b}}).Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.Took == nil || b.Took.Member != "master2" || b.Took.Revision != 42 || b.Took.Keys != 7 {
		t.Fatalf("took %+v, want master2's snapshot at revision 42", b.Took)
	}
	got, _ := os.ReadFile(b.Took.Path)
	want, _ := os.ReadFile(b.Took.Path + ".sha256")
	if string(got) != string(snap) || !strings.HasPrefix(string(want), hex.EncodeToString(sum[:])+"  backup-20261201T100000Z.db") {
		t.Errorf("state dir copy %q, sha256 file %q", got, want)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"backup-20261110T000000Z.db", "backup-20261201T100000Z.db", "backup-20261201T100000Z.db.sha256", "pre-upgrade-v1.37.2-20261020T000000Z.db"}) {
		t.Errorf("kept %v, want the newest 2 backups and the older pre-upgrade snapshot", names)
	}
	if cmds := strings.Join(fakes["master2"].Commands(), "\n"); !strings.Contains(cmds, "rm -f '"+remote+"'") {
		t.Errorf("the host's copy was not removed:\n%s", cmds)
	}
}
