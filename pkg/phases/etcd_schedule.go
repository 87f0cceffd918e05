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
	"sync"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Scheduled etcd snapshots run on the members themselves, so they go on
// with the bastion switched off: a systemd timer per member, each at its
// own offset, snapshots that member into templates.EtcdSnapshotDir and
// keeps the newest N there. `etcd backup --collect` brings the newest of
// each member to the state dir when the bastion is on.

const (
	snapshotSchedulePhase = "etcd-snapshot-schedule"
	snapshotTimerPath     = templates.SystemdUnitDir + "/" + templates.EtcdSnapshotUnit + ".timer"
	snapshotServicePath   = templates.SystemdUnitDir + "/" + templates.EtcdSnapshotUnit + ".service"
)

// EtcdSnapshotSchedule installs (or updates) the timer on every member.
type EtcdSnapshotSchedule struct {
	Every time.Duration
	Keep  int
}

func (*EtcdSnapshotSchedule) Name() string { return snapshotSchedulePhase }
func (*EtcdSnapshotSchedule) Title() string {
	return "scheduled etcd snapshots: a timer on every member, at its own offset"
}
func (*EtcdSnapshotSchedule) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (p *EtcdSnapshotSchedule) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	members := hc.Run.Cluster.EtcdMembers()
	i := slices.Index(members, hc.Host)
	script, svc, tmr, err := templates.EtcdSnapshotJob(templates.EtcdSnapshotJobInput{Host: hc.Name(), Address: hc.Host.InternalAddress,
		Keep: p.Keep, Every: p.Every, Offset: templates.EtcdSnapshotOffset(i, len(members), p.Every)})
	if err != nil {
		return nil, err
	}
	cs := engine.NewChanges(hc, p.Name())
	if _, err := cs.File(ctx, transport.File{Path: templates.EtcdSnapshotScriptPath, Mode: 0o700, Content: script}, engine.FileOpts{}); err != nil {
		return nil, err
	}
	unitChanged := false
	for _, f := range []transport.File{{Path: snapshotServicePath, Content: svc}, {Path: snapshotTimerPath, Content: tmr}} {
		ch, err := cs.File(ctx, f, engine.FileOpts{})
		if err != nil {
			return nil, err
		}
		unitChanged = unitChanged || ch
	}
	units, err := engine.UnitChanges(ctx, hc, engine.Unit{Name: templates.EtcdSnapshotUnit + ".timer", UnitFileChanged: unitChanged})
	if err != nil {
		return nil, err
	}
	cs.Add(units...)
	return cs.List, nil
}

// EtcdSnapshotUnschedule takes the timer away; the snapshots on the
// members stay.
type EtcdSnapshotUnschedule struct{}

func (*EtcdSnapshotUnschedule) Name() string { return snapshotSchedulePhase }
func (*EtcdSnapshotUnschedule) Title() string {
	return "scheduled etcd snapshots: the timer removed from every member (its snapshots stay)"
}
func (*EtcdSnapshotUnschedule) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (p *EtcdSnapshotUnschedule) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "ls " + snapshotTimerPath + " " + snapshotServicePath + " " + templates.EtcdSnapshotScriptPath + " 2>/dev/null; true", ReadOnly: true, Timeout: 30 * time.Second})
	if err != nil || strings.TrimSpace(string(res.Stdout)) == "" {
		return nil, err
	}
	u := templates.EtcdSnapshotUnit
	cmd := fmt.Sprintf("systemctl disable --now %s.timer 2>/dev/null; rm -f %s %s %s && systemctl daemon-reload", u, snapshotTimerPath, snapshotServicePath, templates.EtcdSnapshotScriptPath)
	return []*engine.Change{engine.CommandChange(hc, p.Name(), "remove "+u+".timer and its script (the snapshots in "+templates.EtcdSnapshotDir+" stay)", cmd)}, nil
}

// EtcdSnapshotCollect copies the newest scheduled snapshot of every member
// to the state dir, checked against the sha256 the member wrote, keeping
// the newest Keep of each member there.
type EtcdSnapshotCollect struct {
	Keep int
	// Collected are the state dir's new files (nil in plan).
	Collected []string
	mu        sync.Mutex
}

func (*EtcdSnapshotCollect) Name() string { return "etcd-snapshot-collect" }
func (*EtcdSnapshotCollect) Title() string {
	return "scheduled etcd snapshots: the newest of each member copied to the state dir"
}
func (*EtcdSnapshotCollect) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (p *EtcdSnapshotCollect) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	newest, err := newestScheduled(ctx, hc.Conn)
	if err != nil || newest == "" {
		return nil, err
	}
	r := hc.Run
	local := filepath.Join(SnapshotDir(r), newest)
	if _, err := os.Stat(local); err == nil {
		return nil, nil
	}
	remote := templates.EtcdSnapshotDir + "/" + newest
	return []*engine.Change{{Kind: engine.KindCommand, Key: "etcd-snapshot-collect", Desc: "copy " + remote + " to " + local,
		Apply: func(ctx context.Context, h transport.Host) error {
			b, err := h.Get(ctx, remote)
			if err != nil {
				return err
			}
			sums, err := h.Get(ctx, remote+".sha256")
			if err != nil {
				return fmt.Errorf("reading its sha256 file: %w", err)
			}
			sum := sha256.Sum256(b)
			hexSum := hex.EncodeToString(sum[:])
			if f := strings.Fields(string(sums)); len(f) == 0 || f[0] != hexSum {
				return fmt.Errorf("%s does not match its sha256 file on %s (sha256 %s): take another snapshot (systemctl start %s)", remote, hc.Name(), hexSum, templates.EtcdSnapshotUnit)
			}
			if err := r.State.WriteFile(local, b, 0o600); err != nil {
				return err
			}
			if err := r.State.WriteFile(local+".sha256", []byte(hexSum+"  "+newest+"\n"), 0o600); err != nil {
				return err
			}
			p.mu.Lock()
			p.Collected = append(p.Collected, local)
			p.mu.Unlock()
			return pruneSnapshots(SnapshotDir(r), "scheduled-"+hc.Name(), p.Keep)
		}}}, nil
}

// newestScheduled names the newest scheduled snapshot on a member ("" for none).
func newestScheduled(ctx context.Context, h transport.Host) (string, error) {
	res, err := h.Run(ctx, transport.Cmd{Command: "ls -1 " + templates.EtcdSnapshotDir + " 2>/dev/null; true", ReadOnly: true, Timeout: 30 * time.Second})
	if err != nil {
		return "", err
	}
	return newestSnapshot(strings.Fields(string(res.Stdout)), "scheduled-"), nil
}

// SnapshotScheduleStatus is one member's scheduled snapshots.
type SnapshotScheduleStatus struct {
	Member  string `json:"member"`
	Timer   string `json:"timer"` // systemctl is-active of the timer
	NextRun string `json:"nextRun,omitempty"`
	Last    *struct {
		JobResult
		File string `json:"file"`
	} `json:"lastRun,omitempty"`
	Newest    string        `json:"newest,omitempty"`
	NewestAge time.Duration `json:"newestAgeNs,omitempty"`
	Count     int           `json:"count"`
	Error     string        `json:"error,omitempty"`
}

// SnapshotSchedules reads every member's timer, last run and snapshots.
func SnapshotSchedules(ctx context.Context, r *engine.Run) []SnapshotScheduleStatus {
	members := r.Cluster.EtcdMembers()
	out := make([]SnapshotScheduleStatus, len(members))
	_ = engine.ForEachHost(ctx, r, members, func(ctx context.Context, m *v1alpha1.Host) error {
		i := slices.Index(members, m)
		st := SnapshotScheduleStatus{Member: m.Name}
		defer func() { out[i] = st }()
		conn, err := r.Connect(ctx, m)
		if err != nil {
			st.Error = err.Error()
			return nil
		}
		u := templates.EtcdSnapshotUnit
		cmd := fmt.Sprintf("systemctl is-active %[1]s.timer; systemctl show -p NextElapseUSecMonotonic --value %[1]s.timer; cat %[2]s/last-run.json 2>/dev/null || echo; date -u +%%s", u, templates.EtcdSnapshotDir)
		res, err := conn.Run(ctx, transport.Cmd{Command: cmd, ReadOnly: true, Timeout: 30 * time.Second})
		if err != nil {
			st.Error = err.Error()
			return nil
		}
		lines := strings.Split(strings.TrimRight(string(res.Stdout), "\n"), "\n")
		for len(lines) < 4 {
			lines = append(lines, "")
		}
		st.Timer, st.NextRun = lines[0], lines[1]
		if strings.HasPrefix(lines[2], "{") {
			st.Last = &struct {
				JobResult
				File string `json:"file"`
			}{}
			if json.Unmarshal([]byte(lines[2]), st.Last) != nil {
				st.Last = nil
			}
		}
		newest, err := newestScheduled(ctx, conn)
		if err != nil {
			st.Error = err.Error()
			return nil
		}
		st.Newest = newest
		if t, err := time.Parse("20060102T150405Z", snapshotTime(newest)); err == nil && newest != "" {
			var now int64
			fmt.Sscan(lines[3], &now)
			st.NewestAge = time.Unix(now, 0).Sub(t)
		}
		res, err = conn.Run(ctx, transport.Cmd{Command: "ls -1 " + templates.EtcdSnapshotDir + " 2>/dev/null | grep -c '^scheduled-.*\\.db$'; true", ReadOnly: true, Timeout: 30 * time.Second})
		if err == nil {
			fmt.Sscan(string(res.Stdout), &st.Count)
		}
		return nil
	})
	return out
}
