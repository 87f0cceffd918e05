package phases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// etcd snapshots in the state dir: backups/etcd/<reason>-<UTC time>.db, a
// <name>.db.sha256 beside it (sha256sum's format), and only the newest
// Keep of them. Upgrade takes one first; `k4t etcd backup` will too.

const snapshotRemoteDir = "/var/lib/k4t/snapshots"

// Snapshot is one verified etcd snapshot in the state dir.
type Snapshot struct {
	Path     string // in the state dir
	SHA256   string
	Member   string // the member it was taken from
	Revision int64
	Keys     int64
	Size     int64
	Took     time.Duration
}

// SnapshotDir is where the state dir keeps etcd snapshots.
func SnapshotDir(r *engine.Run) string { return r.State.Path("backups", "etcd") }

// snapshotStatus is `etcdutl snapshot status -w json`.
type snapshotStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int64  `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
}

// EtcdSnapshotChange takes a snapshot on member m, checks it with
// `etcdutl snapshot status`, copies it to the state dir with its sha256,
// removes the host's copy and keeps the newest keep snapshots. reason
// prefixes the file's name ("pre-upgrade-v1.37.2", "backup").
func EtcdSnapshotChange(r *engine.Run, phase string, m *v1alpha1.Host, reason string, keep int, done func(*Snapshot)) *engine.Change {
	return &engine.Change{Host: m.Name, Phase: phase, Kind: engine.KindCommand, Key: "etcd-snapshot",
		Desc: fmt.Sprintf("etcd snapshot from %s, verified, to %s (the newest %d kept)", m.Name, SnapshotDir(r), keep),
		Apply: func(ctx context.Context, h transport.Host) error {
			s, err := takeSnapshot(ctx, r, h, m, reason, keep)
			if err == nil && done != nil {
				done(s)
			}
			return err
		}}
}

func takeSnapshot(ctx context.Context, r *engine.Run, h transport.Host, m *v1alpha1.Host, reason string, keep int) (*Snapshot, error) {
	start := time.Now()
	name := fmt.Sprintf("%s-%s.db", reason, r.Now().UTC().Format("20060102T150405Z"))
	remote := snapshotRemoteDir + "/" + name
	save := fmt.Sprintf("mkdir -p %s && chmod 700 %s && %s", snapshotRemoteDir, snapshotRemoteDir,
		etcdctlCmd([]*v1alpha1.Host{m}, "snapshot save "+transport.ShellQuote(remote)))
	defer h.Run(context.WithoutCancel(ctx), transport.Cmd{Command: "rm -f " + transport.ShellQuote(remote), Timeout: 30 * time.Second})
	if _, err := h.Run(ctx, transport.Cmd{Command: save, Timeout: 5 * time.Minute}); err != nil {
		return nil, fmt.Errorf("etcdctl snapshot save: %w — check etcd's health with `k4t status` or etcdctl endpoint health", err)
	}
	res, err := h.Run(ctx, transport.Cmd{Command: "etcdutl snapshot status -w json " + transport.ShellQuote(remote), Timeout: time.Minute, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("etcdutl snapshot status: the snapshot does not verify: %w", err)
	}
	var st snapshotStatus
	if err := json.Unmarshal(res.Stdout, &st); err != nil || st.Revision == 0 {
		return nil, fmt.Errorf("etcdutl snapshot status: unexpected output %q", strings.TrimSpace(string(res.Stdout)))
	}
	b, err := h.Get(ctx, remote)
	if err != nil {
		return nil, fmt.Errorf("copying the snapshot to the bastion: %w", err)
	}
	sum := sha256.Sum256(b)
	hexSum := hex.EncodeToString(sum[:])
	res, err = h.Run(ctx, transport.Cmd{Command: "sha256sum < " + transport.ShellQuote(remote), Timeout: time.Minute, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	if got := strings.Fields(string(res.Stdout)); len(got) == 0 || got[0] != hexSum {
		return nil, fmt.Errorf("the snapshot's copy on the bastion differs from %s's (sha256 %s, host says %q): re-run", m.Name, hexSum, strings.TrimSpace(string(res.Stdout)))
	}
	dir := SnapshotDir(r)
	local := filepath.Join(dir, name)
	// The snapshot holds the cluster's Secrets: 0600, like the rest of the state dir's secrets.
	if err := r.State.WriteFile(local, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", local, err)
	}
	if err := r.State.WriteFile(local+".sha256", []byte(hexSum+"  "+name+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := pruneSnapshots(dir, snapshotKind(reason), keep); err != nil {
		return nil, err
	}
	s := &Snapshot{Path: local, SHA256: hexSum, Member: m.Name, Revision: st.Revision, Keys: st.TotalKey, Size: int64(len(b)), Took: time.Since(start)}
	r.Events.Infof("", m.Name, "etcd snapshot %s: revision %d, %d keys, %d bytes, sha256 %s…, %s",
		local, s.Revision, s.Keys, s.Size, hexSum[:12], s.Took.Round(time.Millisecond))
	return s, nil
}

// snapshotKind is the reason without its version: "pre-upgrade" for
// "pre-upgrade-v1.37.2", "backup" for "backup".
func snapshotKind(reason string) string {
	if i := strings.Index(reason, "-v"); i > 0 {
		return reason[:i]
	}
	return reason
}

// pruneSnapshots keeps the newest keep snapshots of one kind (by name: the
// time is in it) in dir, with their sha256 files; other kinds are left
// alone, so backups never push out the snapshot taken before an upgrade.
func pruneSnapshots(dir, kind string, keep int) error {
	if keep <= 0 {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var dbs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".db") && strings.HasPrefix(e.Name(), kind+"-") {
			dbs = append(dbs, e.Name())
		}
	}
	slices.SortFunc(dbs, func(a, b string) int { return strings.Compare(snapshotTime(a), snapshotTime(b)) })
	for len(dbs) > keep {
		for _, p := range []string{dbs[0], dbs[0] + ".sha256"} {
			if err := os.Remove(filepath.Join(dir, p)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
		dbs = dbs[1:]
	}
	return nil
}

// newestSnapshot is the snapshot (a *.db name starting with prefix) with
// the latest time in its name among names, or "".
func newestSnapshot(names []string, prefix string) string {
	newest := ""
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, ".db") && (newest == "" || snapshotTime(n) > snapshotTime(newest)) {
			newest = n
		}
	}
	return newest
}

// snapshotTime is the UTC time in a snapshot's name, whatever its reason.
func snapshotTime(name string) string {
	name = strings.TrimSuffix(name, ".db")
	if i := strings.LastIndex(name, "-"); i >= 0 {
		return name[i+1:]
	}
	return name
}

// EtcdBackup takes one verified snapshot into the state dir (`k4t etcd
// backup`), from a healthy follower when there is one, so the leader is
// not slowed.
type EtcdBackup struct {
	Keep int
	// Took is the snapshot taken (nil in plan).
	Took *Snapshot
}

func (*EtcdBackup) Name() string                         { return "etcd-backup" }
func (*EtcdBackup) Title() string                        { return "etcd snapshot into the state dir" }
func (*EtcdBackup) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (p *EtcdBackup) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	from, err := backupMember(ctx, hc.Run)
	if err != nil || from != hc.Name() {
		return nil, err
	}
	return []*engine.Change{EtcdSnapshotChange(hc.Run, p.Name(), hc.Host, "backup", p.Keep, func(s *Snapshot) { p.Took = s })}, nil
}

// backupMember picks, once per run, the member to snapshot: the first
// follower that answers, else the leader, in inventory order. Each member
// is asked on its own, so one that is down is only skipped.
func backupMember(ctx context.Context, r *engine.Run) (string, error) {
	v, err := r.Value("etcd-backup-member", func() (any, error) {
		leader := ""
		var why []string
		for _, m := range r.Cluster.EtcdMembers() {
			conn, err := r.Connect(ctx, m)
			if err != nil {
				why = append(why, err.Error())
				continue
			}
			res, err := conn.Run(ctx, transport.Cmd{Command: etcdctlCmd([]*v1alpha1.Host{m}, "endpoint status -w json"), Timeout: 30 * time.Second, ReadOnly: true})
			var sts []etcdStatus
			if err == nil {
				err = json.Unmarshal(res.Stdout, &sts)
			}
			if err != nil || len(sts) != 1 || sts[0].Status.Header.MemberID == 0 {
				why = append(why, fmt.Sprintf("%s: %v", m.Name, err))
				continue
			}
			if sts[0].Status.Header.MemberID != sts[0].Status.Leader {
				return m.Name, nil
			}
			leader = m.Name
		}
		if leader == "" {
			return nil, engine.Errorf("", "etcd-backup", "check etcd with etcdctl endpoint health on the members", "no etcd member answered endpoint status: %s", strings.Join(why, "; "))
		}
		return leader, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}
