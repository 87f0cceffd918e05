package phases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/status"
	"k4t.io/k4t/pkg/transport"
)

// Copies of the state dir on the cluster's own hosts (spec.stateBackup), so
// that a lost bastion is rebuilt from them: a gzipped tar sealed with age,
// written atomically into a 0700 directory, the newest `keep` kept. A copy is
// written only when the state dir's content changed since the last copy to
// that host.

const stateBackupPhase = "state-backup"

// StateBackupDir is where a host keeps the copies of a cluster's state dir.
func StateBackupDir(cluster string) string { return "/var/lib/k4t/state-backups/" + cluster }

// stateBackupRecord is the state dir's record of the copies made.
type stateBackupRecord struct {
	Targets map[string]stateCopy `json:"targets"`
}

type stateCopy struct {
	Hash string    `json:"hash"`
	File string    `json:"file"`
	Time time.Time `json:"time"`
	Size int       `json:"size"`
}

// StateBackup copies the state dir to spec.stateBackup's targets.
type StateBackup struct {
	// Due: only targets whose last copy is older than their `every`
	// (a scheduled run); otherwise every target whose copy is out of date.
	Due bool
	// Identity is the age identity file's text, set when this run created
	// it: show it once.
	Identity string
	// Written lists the copies written ("host:path, N bytes").
	Written []string

	mu      sync.Mutex
	archive []byte
	sealed  []byte
	hash    string
	record  stateBackupRecord
	started time.Time
}

func (*StateBackup) Name() string { return stateBackupPhase }
func (*StateBackup) Title() string {
	return "state dir: an encrypted copy on each stateBackup target whose copy is out of date"
}

// Hosts are the targets whose copy is out of date (the state dir's content
// changed since their last copy) and, with Due, due: a quiet bastion, or a
// scheduled run with nothing due, connects to no host.
func (p *StateBackup) Hosts(r *engine.Run) []*v1alpha1.Host {
	rec := readBackupRecord(r.State)
	hash, _ := p.content(r) // an error shows in Prepare
	var hs []*v1alpha1.Host
	for _, t := range r.Cluster.Spec.StateBackup.Targets {
		last, ok := rec.Targets[t.Host]
		if h := r.Cluster.Host(t.Host); h != nil && p.wants(r, t, last, ok, hash, r.Now()) {
			hs = append(hs, h)
		}
	}
	return hs
}

// wants says whether target t gets a copy of content hash at now, given its
// last copy (ok: there is one).
func (p *StateBackup) wants(r *engine.Run, t v1alpha1.StateBackupTarget, last stateCopy, ok bool, hash string, now time.Time) bool {
	if !ok {
		return true
	}
	if hash != "" && last.Hash == hash {
		return false
	}
	// A scheduled run comes every tick: a target is due when waiting for
	// the next run would make its copy later than its every.
	return !p.Due || now.Sub(last.Time)+StateBackupTick(r.Cluster.Spec.StateBackup.Targets) > t.Every.Duration
}

// content archives the state dir once per run: its bytes and their hash.
func (p *StateBackup) content(r *engine.Run) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hash != "" {
		return p.hash, nil
	}
	archive, hash, err := r.State.Archive()
	if err != nil {
		return "", fmt.Errorf("archiving the state dir: %w", err)
	}
	p.archive, p.hash = archive, hash
	return hash, nil
}

func readBackupRecord(st *state.Dir) stateBackupRecord {
	rec := stateBackupRecord{Targets: map[string]stateCopy{}}
	if b, err := os.ReadFile(st.Path(state.BackupRecord)); err == nil {
		_ = json.Unmarshal(b, &rec)
		if rec.Targets == nil {
			rec.Targets = map[string]stateCopy{}
		}
	}
	return rec
}

// Prepare archives and seals the state dir once (locally).
func (p *StateBackup) Prepare(_ context.Context, r *engine.Run) error {
	if len(r.Cluster.Spec.StateBackup.Targets) == 0 {
		return engine.Errorf("", stateBackupPhase, "list targets in hosts.yaml: spec.stateBackup: {targets: [{host: master1, every: 2m, keep: 30}]}", "spec.stateBackup has no targets")
	}
	p.started = r.Now()
	rcpt, identity, created, err := r.State.BackupRecipient()
	if err != nil {
		return err
	}
	if created {
		p.Identity = identity
	}
	if _, err := p.content(r); err != nil {
		return err
	}
	if p.sealed, err = state.Seal(p.archive, rcpt); err != nil {
		return err
	}
	p.record = readBackupRecord(r.State)
	return nil
}

func target(r *engine.Run, host string) v1alpha1.StateBackupTarget {
	for _, t := range r.Cluster.Spec.StateBackup.Targets {
		if t.Host == host {
			return t
		}
	}
	return v1alpha1.StateBackupTarget{}
}

func (p *StateBackup) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	t := target(r, hc.Name())
	p.mu.Lock()
	last, ok := p.record.Targets[hc.Name()]
	hash := p.hash
	p.mu.Unlock()
	if !p.wants(r, t, last, ok, hash, p.started) {
		return nil, nil
	}
	dir := StateBackupDir(r.Cluster.Metadata.Name)
	name := "state-" + p.started.UTC().Format("20060102T150405Z") + ".tar.gz.age"
	desc := fmt.Sprintf("copy the state dir (%d bytes, sealed with age) to %s/%s; keep the newest %d", len(p.sealed), dir, name, t.Keep)
	return []*engine.Change{{Kind: engine.KindFile, Key: "state-backup:" + name, Desc: desc,
		Apply: func(ctx context.Context, h transport.Host) error {
			if _, err := h.Run(ctx, transport.Cmd{Command: fmt.Sprintf("mkdir -p %[1]s && chmod 700 %[1]s", transport.ShellQuote(dir))}); err != nil {
				return err
			}
			if _, err := h.Put(ctx, transport.File{Path: dir + "/" + name, Mode: 0o600, Content: p.sealed}); err != nil {
				return err
			}
			prune := fmt.Sprintf("cd %s && ls -1 | grep '^state-.*\\.tar\\.gz\\.age$' | sort | head -n -%d | xargs -r rm -f", transport.ShellQuote(dir), t.Keep)
			if _, err := h.Run(ctx, transport.Cmd{Command: prune}); err != nil {
				return err
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			p.record.Targets[hc.Name()] = stateCopy{Hash: p.hash, File: dir + "/" + name, Time: p.started.UTC(), Size: len(p.sealed)}
			p.Written = append(p.Written, fmt.Sprintf("%s:%s/%s, %d bytes", hc.Name(), dir, name, len(p.sealed)))
			b, _ := json.MarshalIndent(p.record, "", "  ")
			return r.State.WriteFile(r.State.Path(state.BackupRecord), append(b, '\n'), 0o600)
		}}}, nil
}

// StateCopy is one copy of the state dir on a host.
type StateCopy struct {
	File string    `json:"file"`
	Time time.Time `json:"time"`
	Size int64     `json:"size"`
}

// ListStateCopies lists the copies on host, oldest first.
func ListStateCopies(ctx context.Context, r *engine.Run, host *v1alpha1.Host) ([]StateCopy, error) {
	conn, err := r.Connect(ctx, host)
	if err != nil {
		return nil, err
	}
	dir := StateBackupDir(r.Cluster.Metadata.Name)
	res, err := conn.Run(ctx, transport.Cmd{Command: "cd " + transport.ShellQuote(dir) + " 2>/dev/null && for f in state-*.tar.gz.age; do [ -f \"$f\" ] && echo \"$f $(wc -c < \"$f\")\"; done; true", ReadOnly: true, Timeout: 30 * time.Second})
	if err != nil {
		return nil, engine.WrapPhase(stateBackupPhase, host.Name, err)
	}
	var out []StateCopy
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		size, _ := strconv.ParseInt(f[1], 10, 64)
		t, _ := status.SnapshotTime(strings.TrimSuffix(strings.TrimSuffix(f[0], ".age"), ".tar.gz"))
		out = append(out, StateCopy{File: dir + "/" + f[0], Time: t, Size: size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// RestoreState rebuilds the state dir from a copy on host: the newest, or
// the newest at or before at. The state dir must not hold a CA yet: a
// restore is for a lost bastion, and never overwrites a live state dir.
func RestoreState(ctx context.Context, r *engine.Run, host *v1alpha1.Host, at time.Time, identity []byte) (*StateCopy, int, error) {
	if _, err := os.Stat(r.State.Path("pki", "ca.crt")); err == nil {
		return nil, 0, engine.Errorf("", stateBackupPhase, "move "+r.State.Root+" aside first, or use another --state-dir",
			"the state dir %s already holds this cluster's CA: a restore never overwrites a live state dir", r.State.Root)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, 0, err
	}
	copies, err := ListStateCopies(ctx, r, host)
	if err != nil {
		return nil, 0, err
	}
	var pick *StateCopy
	for i := range copies {
		if at.IsZero() || !copies[i].Time.After(at) {
			pick = &copies[i]
		}
	}
	if pick == nil {
		return nil, 0, engine.Errorf(host.Name, stateBackupPhase, "list them with k4t state list --from "+host.Name, "no copy of the state dir there (at or before %v)", at)
	}
	conn, err := r.Connect(ctx, host)
	if err != nil {
		return nil, 0, err
	}
	sealed, err := conn.Get(ctx, pick.File)
	if err != nil {
		return nil, 0, engine.WrapPhase(stateBackupPhase, host.Name, err)
	}
	archive, err := state.Unseal(sealed, identity)
	if err != nil {
		return nil, 0, engine.WrapPhase(stateBackupPhase, host.Name, err)
	}
	n, err := r.State.Extract(archive)
	if err != nil {
		return nil, n, err
	}
	return pick, n, nil
}
