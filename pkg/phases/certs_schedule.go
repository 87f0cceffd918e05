package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/schedule"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// ScheduleInfo is what `k4t certs schedule` installed, kept in the state dir.
type ScheduleInfo struct {
	Kind        string   `json:"kind"`
	Files       []string `json:"files"`
	Every       string   `json:"every"`
	RenewBefore string   `json:"renewBefore,omitempty"`
	Schedule    string   `json:"schedule,omitempty"` // cron fields
	// NodeFallback is the threshold of the masters' own timers, when installed.
	NodeFallback string    `json:"nodeFallback,omitempty"`
	Installed    time.Time `json:"installed"`
}

// JobResult is what the job script writes after each run.
type JobResult struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	ExitCode int    `json:"exitCode"`
}

// ScheduleStatus answers `k4t certs schedule --status`.
type ScheduleStatus struct {
	Installed bool          `json:"installed"`
	Info      *ScheduleInfo `json:"info,omitempty"`
	NextRun   string        `json:"nextRun,omitempty"`
	Last      *JobResult    `json:"lastRun,omitempty"`
	LogTail   []string      `json:"logTail,omitempty"`
	Log       string        `json:"log"`
	Job       string        `json:"job"`
	Warning   string        `json:"warning,omitempty"`
}

// Paths of the schedule's files in a cluster's state dir.
func CertsJobPath(st *state.Dir) string    { return st.Path("certs-job.sh") }
func CertsLogPath(st *state.Dir) string    { return filepath.Join(st.Logs(), "certs-renew.log") }
func CertsStatusPath(st *state.Dir) string { return st.Path("certs-renew.status.json") }
func certsInfoPath(st *state.Dir) string   { return st.Path("certs-schedule.json") }
func certsLockPath(st *state.Dir) string   { return st.Path("certs-renew.lock") }

// CertsJobInput fills the job's paths from the state dir.
func CertsJobInput(st *state.Dir, cluster, binary, stateRoot, inventory string, every, renewBefore time.Duration) templates.CertsJobInput {
	return templates.CertsJobInput{Cluster: cluster, Binary: binary, StateRoot: stateRoot, Inventory: inventory,
		Log: CertsLogPath(st), Status: CertsStatusPath(st), Lock: certsLockPath(st), Job: CertsJobPath(st),
		Every: every, RenewBefore: renewBefore}
}

// InstallCertsSchedule writes the job script and has s install it (a systemd
// timer, or a cron entry), replacing an earlier schedule of the same
// cluster. Warnings (cron installed but not running) come back with a nil
// error.
func InstallCertsSchedule(ctx context.Context, s *schedule.Scheduler, st *state.Dir, in templates.CertsJobInput) (info *ScheduleInfo, warning string, err error) {
	info = &ScheduleInfo{RenewBefore: templates.FormatDays(in.RenewBefore)}
	if b, err := os.ReadFile(certsInfoPath(st)); err == nil {
		var old ScheduleInfo
		if json.Unmarshal(b, &old) == nil {
			info.NodeFallback = old.NodeFallback
		}
	}
	warning, err = installBastionJob(ctx, s, st, in.Bastion(), info, certsInfoPath(st))
	if err != nil {
		return nil, "", fmt.Errorf("certs / %w", err)
	}
	return info, warning, nil
}

// RemoveCertsSchedule takes the schedule away (timer stopped and disabled,
// files removed). The job's log and last result stay in the state dir.
func RemoveCertsSchedule(ctx context.Context, s *schedule.Scheduler, st *state.Dir, cluster string) ([]string, error) {
	removed, err := s.Remove(ctx, templates.CertsUnitName(cluster), certsInfoPath(st), CertsJobPath(st))
	if err != nil {
		return removed, fmt.Errorf("certs / %w", err)
	}
	return removed, nil
}

// CertsScheduleStatus reports whether a schedule is installed, its next run
// and the last result.
func CertsScheduleStatus(ctx context.Context, s *schedule.Scheduler, st *state.Dir, cluster string, now time.Time) (*ScheduleStatus, error) {
	out, err := bastionJobStatus(ctx, s, templates.CertsUnitName(cluster), certsInfoPath(st), CertsStatusPath(st), CertsLogPath(st), now)
	if err != nil {
		return nil, fmt.Errorf("certs / %w", err)
	}
	out.Job = CertsJobPath(st)
	return out, nil
}

// InstallNodeFallback puts the node-side fallback on every master: a script and a daily
// timer, each master at its own hour (see templates.CertsFallbackInput). Masters are
// changed in parallel: nothing restarts now.
func InstallNodeFallback(ctx context.Context, r *engine.Run, before time.Duration) error {
	masters := r.Cluster.Masters()
	return engine.OnHosts(ctx, r, certsPhase, masters, func(ctx context.Context, hc *engine.HostCtx) error {
		idx := 0
		for i, m := range masters {
			if m.Name == hc.Name() {
				idx = i
			}
		}
		in := templates.CertsFallbackInput{Before: before, Index: idx, Count: len(masters), Seed: r.Cluster.Metadata.Name}
		script, err := templates.CertsFallbackScript(in)
		if err != nil {
			return err
		}
		svc, err := templates.CertsFallbackService(in)
		if err != nil {
			return err
		}
		tmr, err := templates.CertsFallbackTimer(in)
		if err != nil {
			return err
		}
		unitChanged := false
		for _, f := range []transport.File{
			{Path: templates.CertsFallbackScriptPath, Mode: 0o755, Content: script},
			{Path: templates.SystemdUnitDir + "/" + templates.CertsFallbackUnit + ".service", Mode: 0o644, Content: svc},
			{Path: templates.SystemdUnitDir + "/" + templates.CertsFallbackUnit + ".timer", Mode: 0o644, Content: tmr},
		} {
			c, err := engine.FileChange(ctx, hc, certsPhase, f, engine.FileOpts{})
			if err != nil {
				return err
			}
			if c != nil {
				if err := engine.ApplyChange(ctx, r, hc.Conn, c); err != nil {
					return err
				}
				unitChanged = unitChanged || strings.HasPrefix(f.Path, templates.SystemdUnitDir)
			}
		}
		cmd := "systemctl enable --now " + templates.CertsFallbackUnit + ".timer"
		if unitChanged {
			cmd = "systemctl daemon-reload && systemctl restart " + templates.CertsFallbackUnit + ".timer && " + cmd
		}
		return engine.ApplyChange(ctx, r, hc.Conn, engine.CommandChange(hc, certsPhase, "enable "+templates.CertsFallbackUnit+".timer", cmd))
	})
}

// RemoveNodeFallback takes the node-side fallback off every master.
func RemoveNodeFallback(ctx context.Context, r *engine.Run) error {
	u := templates.CertsFallbackUnit
	cmd := fmt.Sprintf("systemctl disable --now %[1]s.timer 2>/dev/null; rm -f %[2]s/%[1]s.timer %[2]s/%[1]s.service %[3]s && systemctl daemon-reload", u, templates.SystemdUnitDir, templates.CertsFallbackScriptPath)
	return engine.OnHosts(ctx, r, certsPhase, r.Cluster.Masters(), func(ctx context.Context, hc *engine.HostCtx) error {
		return engine.ApplyChange(ctx, r, hc.Conn, engine.CommandChange(hc, certsPhase, "remove "+u+".timer", cmd))
	})
}

// RecordNodeFallback notes in the schedule's info that masters carry the fallback (so
// --remove knows to take it away); before == 0 clears it.
func RecordNodeFallback(st *state.Dir, before time.Duration) error {
	var info ScheduleInfo
	if b, err := os.ReadFile(certsInfoPath(st)); err == nil {
		_ = json.Unmarshal(b, &info)
	}
	info.NodeFallback = ""
	if before > 0 {
		info.NodeFallback = templates.FormatDays(before)
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	return st.WriteFile(certsInfoPath(st), append(b, '\n'), 0o600)
}

// NodeFallbackRecorded says whether the masters carry the fallback.
func NodeFallbackRecorded(st *state.Dir) bool {
	b, err := os.ReadFile(certsInfoPath(st))
	if err != nil {
		return false
	}
	var info ScheduleInfo
	return json.Unmarshal(b, &info) == nil && info.NodeFallback != ""
}
