package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 12 on the HA cluster: backup and restore, scheduled snapshots on
// the members, a damaged snapshot refused, a restore killed after the
// members stopped and finished by a re-run. They run after the Deployment
// "web" exists and leave the cluster with 3 healthy members, every node
// Ready and "web" running, for the delete tests that follow.

// etcdRestorePlanned: ConfigMap A, backup, ConfigMap B, A deleted; a dry
// run of the restore lists every step and changes nothing. The restore
// itself is etcdRestoreKilled's, from this backup.
func (e *env) etcdRestorePlanned(t *testing.T) {
	e.mustKubectl("create", "configmap", "restore-a", "--from-literal=k=a")
	e.etcdBackup(t)
	e.mustKubectl("create", "configmap", "restore-b", "--from-literal=k=b")
	e.mustKubectl("delete", "configmap", "restore-a")

	dry := e.k4t("etcd", "restore", "--from", "latest", "--dry-run", "-f", e.inv)
	if dry.code != 0 {
		t.Fatalf("restore --dry-run: exit %d\n%s\n%s", dry.code, dry.stderr, tail(dry.stdout, 20))
	}
	mustContain(t, "restore --dry-run", dry.stdout, "restore backup-", "stop kube-apiserver", "move /var/lib/etcd aside", "restart kubelet")
	if out := e.mustKubectl("get", "configmap", "restore-b", "-o", "name"); !strings.Contains(out, "restore-b") {
		t.Fatalf("the dry run changed the cluster: %q", out)
	}
}

// assertRestored: present exists and gone does not; every node Ready; the
// API answers through the VIP; web's pods run again; the three members are
// healthy and agree on hashkv.
func (e *env) assertRestored(t *testing.T, present, gone string) {
	t.Helper()
	if out, err := e.kubectl("get", "configmap", present, "-o", "name"); err != nil || !strings.Contains(out, present) {
		t.Errorf("ConfigMap %s is not back: %v %s", present, err, out)
	}
	if out, err := e.kubectl("get", "configmap", gone, "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("ConfigMap %s, made after the snapshot, is still there: %v %q", gone, err, out)
	}
	if out, err := e.kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=120s"); err != nil {
		t.Errorf("nodes not Ready: %v\n%s", err, out)
	}
	if out, err := e.kubectl("--server", "https://"+vip+":6443", "get", "--raw", "/readyz"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("/readyz through the VIP: %v %s", err, out)
	}
	if out, err := e.kubectl("rollout", "status", "deploy/web", "--timeout=180s"); err != nil {
		t.Errorf("web after the restore: %v\n%s\n%s", err, out, e.mustKubectl("get", "pods", "-o", "wide"))
	}
	e.assertEtcd(t, "master1", "master2", "master3")
	// The API writes between the members' answers: compare the hash of
	// the key space up to a revision every member has applied.
	out, err := e.etcdctl("master1", "endpoint status -w json")
	var sts []struct {
		Status struct {
			Header struct{ Revision int64 } `json:"header"`
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 3 {
		t.Fatalf("endpoint status: %v %s", err, out)
	}
	rev := sts[0].Status.Header.Revision
	for _, s := range sts {
		rev = min(rev, s.Status.Header.Revision)
	}
	out, err = e.etcdctl("master1", fmt.Sprintf("endpoint hashkv --rev=%d -w json", rev))
	var hs []struct {
		Endpoint string
		HashKV   struct{ Hash uint32 }
	}
	if err != nil || json.Unmarshal([]byte(out), &hs) != nil || len(hs) != 3 {
		t.Fatalf("hashkv: %v %s", err, out)
	}
	if hs[0].HashKV.Hash != hs[1].HashKV.Hash || hs[1].HashKV.Hash != hs[2].HashKV.Hash {
		t.Errorf("the members' hashkv at revision %d differ: %s", rev, out)
	}
	if rev < 1_000_000_000 {
		t.Errorf("revision %d: the restore did not bump it by 1,000,000,000", rev)
	}
}

// etcdScheduledSnapshots: the timer on every member; its unit run now on
// each leaves a fresh, valid snapshot there; --status shows them; --collect
// brings them to the state dir.
func (e *env) etcdScheduledSnapshots(t *testing.T) {
	r := e.k4t("etcd", "backup", "--schedule", "--every", "1h", "--keep", "3", "-f", e.inv)
	if r.code != 0 {
		t.Fatalf("backup --schedule: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 20))
	}
	var offsets []string
	for _, m := range []string{"master1", "master2", "master3"} {
		if out := e.exec(m, "systemctl is-active k4t-etcd-snapshot.timer"); out != "active" {
			t.Errorf("%s: timer %q", m, out)
		}
		offsets = append(offsets, e.exec(m, "sed -n 's/^OnActiveSec=//p' /etc/systemd/system/k4t-etcd-snapshot.timer"))
		start := time.Now()
		// Four runs: the newest 3 stay.
		for i := 0; i < 4; i++ {
			if out, err := e.tryExec(m, "systemctl start k4t-etcd-snapshot.service"); err != nil {
				t.Fatalf("%s: the scheduled snapshot failed: %v %s\n%s", m, err, out, e.exec(m, "journalctl -u k4t-etcd-snapshot --no-pager | tail -20"))
			}
			time.Sleep(time.Second) // names are per second
		}
		fmt.Printf("FIGURE etcd-scheduled-snapshot %s: 4 runs in %s\n", m, time.Since(start).Round(100*time.Millisecond))
		files := e.exec(m, "cd /var/lib/k4t/etcd-snapshots && ls scheduled-*.db | wc -l && sha256sum -c --quiet *.sha256 && stat -c %a . && etcdutl snapshot status -w json $(ls scheduled-*.db | tail -1)")
		if f := strings.Fields(files); len(f) < 3 || f[0] != "3" || f[1] != "700" || !strings.Contains(files, `"revision"`) {
			t.Errorf("%s: want 3 valid snapshots in a 0700 dir, got:\n%s", m, files)
		}
	}
	if len(offsets) != 3 || offsets[0] == offsets[1] || offsets[1] == offsets[2] {
		t.Errorf("the members' timers are not staggered: OnActiveSec %v", offsets)
	}
	st := e.k4t("etcd", "backup", "--status", "-f", e.inv)
	var sts []struct {
		Member, Timer, Newest string
		Count                 int
		LastRun               *struct{ ExitCode int }
	}
	if st.code != 0 || json.Unmarshal([]byte(st.stdout), &sts) != nil || len(sts) != 3 {
		t.Fatalf("backup --status: exit %d\n%s\n%s", st.code, st.stdout, st.stderr)
	}
	for _, s := range sts {
		if s.Timer != "active" || s.Count != 3 || s.LastRun == nil || s.LastRun.ExitCode != 0 || !strings.HasPrefix(s.Newest, "scheduled-"+s.Member+"-") {
			t.Errorf("status of %s: %+v", s.Member, s)
		}
	}
	col := e.k4t("etcd", "backup", "--collect", "-f", e.inv)
	if col.code != 0 {
		t.Fatalf("backup --collect: exit %d\n%s\n%s", col.code, col.stderr, tail(col.stdout, 20))
	}
	dir := filepath.Join(e.stateDir, "clusters", "lab", "backups", "etcd")
	for _, m := range []string{"master1", "master2", "master3"} {
		dbs, _ := filepath.Glob(filepath.Join(dir, "scheduled-"+m+"-*.db"))
		if len(dbs) != 1 {
			t.Errorf("%d collected snapshot(s) of %s, want 1", len(dbs), m)
			continue
		}
		snapshotVerified(t, dbs[0])
	}
	if again := e.k4t("etcd", "backup", "--collect", "-f", e.inv); again.code != 0 || again.changes() != 0 {
		t.Errorf("a second collect: exit %d, %d change(s)", again.code, again.changes())
	}
	fmt.Printf("FIGURE etcd-collect: 3 snapshots in %s; %s\n", col.duration.Round(100*time.Millisecond), lastLine(col.stderr))
}

// etcdRestoreRefusesDamaged: a snapshot with one flipped byte is refused
// before anything stops.
func (e *env) etcdRestoreRefusesDamaged(t *testing.T) {
	dir := filepath.Join(e.stateDir, "clusters", "lab", "backups", "etcd")
	dbs, _ := filepath.Glob(filepath.Join(dir, "backup-*.db"))
	if len(dbs) == 0 {
		t.Fatal("no backup snapshot")
	}
	b, err := os.ReadFile(dbs[0])
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := os.ReadFile(dbs[0] + ".sha256")
	bad := filepath.Join(t.TempDir(), "damaged.db")
	b[len(b)/2] ^= 0x10
	os.WriteFile(bad, b, 0o600)
	os.WriteFile(bad+".sha256", sum, 0o600)
	before := e.activeSince(t)
	r := e.k4t("etcd", "restore", "--from", bad, "--yes", "-f", e.inv)
	if r.code == 0 {
		t.Fatal("a damaged snapshot was restored")
	}
	mustContain(t, "damaged snapshot", r.stderr, "does not match its sha256 file", "nothing was stopped")
	if after := e.activeSince(t); !equalMaps(before, after) {
		t.Errorf("units restarted:\n%s", diffLines(fmt.Sprint(before), fmt.Sprint(after)))
	}
	if out, err := e.kubectl("get", "--raw", "/readyz"); err != nil {
		t.Errorf("the API after the refusal: %v %s", err, out)
	}
}

// etcdRestoreKilled: the restore from etcdRestorePlanned's backup is
// killed right after the first member's data was swapped; other commands
// refuse to run; the re-run finishes it: ConfigMap A is back, B (made after
// the backup) and C (made now) are gone.
func (e *env) etcdRestoreKilled(t *testing.T) {
	dbs, _ := filepath.Glob(filepath.Join(e.stateDir, "clusters", "lab", "backups", "etcd", "backup-*.db"))
	if len(dbs) != 1 {
		t.Fatalf("%d backup snapshot(s) in the state dir, want etcdRestorePlanned's", len(dbs))
	}
	e.mustKubectl("create", "configmap", "restore-c", "--from-literal=k=c")
	p := startProbe(t, e.kubeconfig(), "https://"+vip+":6443")
	killed := e.k4tWatched(func(ev map[string]any, kill func()) {
		if ev["type"] == "change" && ev["action"] == "applied" && ev["phase"] == "etcd-restore-swap" {
			kill()
		}
	}, "etcd", "restore", "--from", dbs[0], "--yes", "-f", e.inv)
	if killed.code == 0 {
		t.Fatalf("the restore ended before it was killed:\n%s", tail(killed.stdout, 20))
	}
	plan := e.k4t("plan", "-f", e.inv)
	if plan.code == 0 {
		t.Errorf("plan ran with a restore half done:\n%s", tail(plan.stdout, 10))
	}
	mustContain(t, "plan during a restore", plan.stderr, "stopped half-way", "k4t etcd restore --from")
	again := e.k4t("etcd", "restore", "--from", dbs[0], "--yes", "-f", e.inv)
	calls, failures, longest := p.finish()
	if again.code != 0 {
		t.Fatalf("the re-run: exit %d\n%s\n%s", again.code, again.stderr, tail(again.stdout, 30))
	}
	mustContain(t, "the re-run", again.stdout, "finishing restore")
	e.assertRestored(t, "restore-a", "restore-b")
	if out, err := e.kubectl("get", "configmap", "restore-c", "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("ConfigMap restore-c, made after the snapshot, is still there: %v %q", err, out)
	}
	fmt.Printf("FIGURE etcd-restore-killed: killed after %s, re-run %s; API through the VIP down %s (%d of %d probe calls failed)\n",
		killed.duration.Round(100*time.Millisecond), again.duration.Round(100*time.Millisecond), longest.Round(100*time.Millisecond), len(failures), calls)
	if r := e.k4t("etcd", "backup", "--remove", "-f", e.inv); r.code != 0 {
		t.Errorf("backup --remove: exit %d\n%s", r.code, r.stderr)
	}
	if out := e.exec("master2", "ls /etc/systemd/system/k4t-etcd-snapshot.timer 2>/dev/null; ls /var/lib/k4t/etcd-snapshots | grep -c db$"); out != "3" {
		t.Errorf("after --remove, want no timer and the 3 snapshots kept; got %q", out)
	}
}

// etcdRestoreLightweight: the same backup and restore on the one-master
// cluster, whose only member is also its only API server.
func (e *env) etcdRestoreLightweight(t *testing.T) {
	e.mustKubectl("create", "configmap", "restore-a", "--from-literal=k=a")
	b := e.k4t("etcd", "backup", "-f", e.inv)
	if b.code != 0 {
		t.Fatalf("etcd backup: exit %d\n%s", b.code, b.stderr)
	}
	e.mustKubectl("create", "configmap", "restore-b", "--from-literal=k=b")
	e.mustKubectl("delete", "configmap", "restore-a")
	r := e.k4t("etcd", "restore", "--from", "latest", "--yes", "-f", e.inv)
	if r.code != 0 {
		t.Fatalf("etcd restore: exit %d\n%s\n%s", r.code, r.stderr, tail(r.stdout, 30))
	}
	if out, err := e.kubectl("get", "configmap", "restore-a", "-o", "name"); err != nil || !strings.Contains(out, "restore-a") {
		t.Errorf("ConfigMap restore-a is not back: %v %s", err, out)
	}
	if out, _ := e.kubectl("get", "configmap", "restore-b", "-o", "name", "--ignore-not-found"); strings.TrimSpace(out) != "" {
		t.Errorf("ConfigMap restore-b, made after the snapshot, is still there: %q", out)
	}
	if out, err := e.kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=120s"); err != nil {
		t.Errorf("nodes not Ready: %v\n%s", err, out)
	}
	fmt.Printf("FIGURE etcd-restore-lightweight: backup %s, restore %s\n", b.duration.Round(100*time.Millisecond), r.duration.Round(100*time.Millisecond))
}
