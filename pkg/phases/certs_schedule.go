package phases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Scheduler installs, removes and reports the scheduled certificate renewal on the bastion
// (the machine k4t runs on): a systemd timer when systemd is PID 1, otherwise an
// /etc/cron.d entry. Both run the same job script from the cluster's state dir.
type Scheduler struct {
	// Root is prepended to /etc paths ("" or "/" on a real bastion; a temp dir in tests).
	Root string
	// Exec runs a local command (systemctl); nil uses os/exec.
	Exec func(ctx context.Context, name string, args ...string) ([]byte, error)
	// InitName returns PID 1's name; nil reads /proc/1/comm.
	InitName func() string
	// CronDaemon returns the path of an installed cron daemon and whether one runs; nil
	// looks for cron/crond in the usual places and in /proc.
	CronDaemon func() (path string, running bool)
}

// Schedule kinds.
const (
	ScheduleSystemd = "systemd-timer"
	ScheduleCron    = "cron"
)

// ScheduleInfo is what `k4t certs schedule` installed, kept in the state dir.
type ScheduleInfo struct {
	Kind        string   `json:"kind"`
	Files       []string `json:"files"`
	Every       string   `json:"every"`
	RenewBefore string   `json:"renewBefore"`
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

func (s *Scheduler) path(p string) string { return filepath.Join(s.Root, p) }

func (s *Scheduler) exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	if s.Exec != nil {
		return s.Exec(ctx, name, args...)
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

func (s *Scheduler) initName() string {
	if s.InitName != nil {
		return s.InitName()
	}
	b, _ := os.ReadFile("/proc/1/comm")
	return strings.TrimSpace(string(b))
}

func (s *Scheduler) cron() (string, bool) {
	if s.CronDaemon != nil {
		return s.CronDaemon()
	}
	var path string
	for _, p := range []string{"/usr/sbin/cron", "/usr/sbin/crond", "/sbin/crond", "/usr/bin/crond"} {
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	running := false
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if n := strings.TrimSpace(string(b)); n == "cron" || n == "crond" {
			running = true
			break
		}
	}
	return path, running
}

// Install writes the job script and the timer+service (systemd as PID 1) or the cron
// entry, replacing an earlier schedule of the same cluster. Warnings (cron installed but
// not running) come back with a nil error.
func (s *Scheduler) Install(ctx context.Context, st *state.Dir, in templates.CertsJobInput) (info *ScheduleInfo, warning string, err error) {
	job, err := templates.CertsJob(in)
	if err != nil {
		return nil, "", err
	}
	if err := st.WriteFile(in.Job, job, 0o700); err != nil {
		return nil, "", fmt.Errorf("writing %s: %w", in.Job, err)
	}
	name := templates.CertsUnitName(in.Cluster)
	info = &ScheduleInfo{Every: templates.FormatDays(in.Every), RenewBefore: templates.FormatDays(in.RenewBefore), Installed: time.Now().UTC()}
	if b, err := os.ReadFile(certsInfoPath(st)); err == nil {
		var old ScheduleInfo
		if json.Unmarshal(b, &old) == nil {
			info.NodeFallback = old.NodeFallback
		}
	}
	if init := s.initName(); init == "systemd" {
		svc, err := templates.CertsService(in)
		if err != nil {
			return nil, "", err
		}
		tmr, err := templates.CertsTimer(in)
		if err != nil {
			return nil, "", err
		}
		unitDir := s.path(templates.SystemdUnitDir)
		files := map[string][]byte{filepath.Join(unitDir, name+".service"): svc, filepath.Join(unitDir, name+".timer"): tmr}
		for p, b := range files {
			if err := writeLocal(p, b, 0o644); err != nil {
				return nil, "", err
			}
		}
		if _, err := s.exec(ctx, "systemctl", "daemon-reload"); err != nil {
			return nil, "", err
		}
		if _, err := s.exec(ctx, "systemctl", "enable", "--now", name+".timer"); err != nil {
			return nil, "", err
		}
		info.Kind = ScheduleSystemd
		info.Files = []string{templates.SystemdUnitDir + "/" + name + ".service", templates.SystemdUnitDir + "/" + name + ".timer"}
	} else {
		daemon, running := s.cron()
		if daemon == "" {
			return nil, "", fmt.Errorf("certs / schedule: this machine has no systemd as PID 1 (PID 1 is %q) and no cron daemon is installed — install cron (`apt-get install cron`, then start it) and re-run, or run %s from your own scheduler (it is written)", init, in.Job)
		}
		cron, err := templates.CertsCron(in)
		if err != nil {
			return nil, "", err
		}
		if err := writeLocal(s.path(templates.CronDir+"/"+name), cron, 0o644); err != nil {
			return nil, "", err
		}
		info.Kind = ScheduleCron
		info.Files = []string{templates.CronDir + "/" + name}
		info.Schedule, _ = templates.CronSchedule(in.Every, in.Cluster)
		if !running {
			warning = fmt.Sprintf("cron (%s) is installed but not running: the entry runs only once it is started (e.g. `service cron start`)", daemon)
		}
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := st.WriteFile(certsInfoPath(st), append(b, '\n'), 0o600); err != nil {
		return nil, "", err
	}
	return info, warning, nil
}

func writeLocal(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("certs / schedule: %w — run k4t as root to install a schedule", err)
	}
	tmp := path + ".k4t-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("certs / schedule: %w — run k4t as root to install a schedule", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Remove takes the schedule away (timer stopped and disabled, files removed). The job's
// log and last result stay in the state dir.
func (s *Scheduler) Remove(ctx context.Context, st *state.Dir, cluster string) (removed []string, err error) {
	name := templates.CertsUnitName(cluster)
	timer := s.path(templates.SystemdUnitDir + "/" + name + ".timer")
	if _, err := os.Stat(timer); err == nil {
		if s.initName() == "systemd" {
			if _, err := s.exec(ctx, "systemctl", "disable", "--now", name+".timer"); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range []string{timer, s.path(templates.SystemdUnitDir + "/" + name + ".service"), s.path(templates.CronDir + "/" + name), certsInfoPath(st), CertsJobPath(st)} {
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("certs / schedule: removing %s: %w", p, err)
		}
	}
	if len(removed) > 0 && s.initName() == "systemd" {
		_, _ = s.exec(ctx, "systemctl", "daemon-reload")
	}
	return removed, nil
}

// Status reports whether a schedule is installed, its next run and the last result.
func (s *Scheduler) Status(ctx context.Context, st *state.Dir, cluster string, now time.Time) (*ScheduleStatus, error) {
	out := &ScheduleStatus{Log: CertsLogPath(st), Job: CertsJobPath(st)}
	if b, err := os.ReadFile(certsInfoPath(st)); err == nil {
		var info ScheduleInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return nil, fmt.Errorf("certs / schedule: %s: %w — remove it with --remove and install again", certsInfoPath(st), err)
		}
		out.Info, out.Installed = &info, info.Kind != ""
		name := templates.CertsUnitName(cluster)
		switch info.Kind {
		case ScheduleSystemd:
			b, err := s.exec(ctx, "systemctl", "show", "-p", "NextElapseUSecRealtime", "--value", name+".timer")
			if err != nil {
				out.Warning = err.Error()
			}
			out.NextRun = strings.TrimSpace(string(b))
		case ScheduleCron:
			if t, ok := NextCron(info.Schedule, now); ok {
				out.NextRun = t.Format(time.RFC3339)
			}
			if _, running := s.cron(); !running {
				out.Warning = "cron is not running: nothing will run until it is started"
			}
		}
	}
	if b, err := os.ReadFile(CertsStatusPath(st)); err == nil {
		var last JobResult
		if json.Unmarshal(b, &last) == nil {
			out.Last = &last
		}
	}
	if b, err := os.ReadFile(CertsLogPath(st)); err == nil {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		out.LogTail = lines
	}
	return out, nil
}

// NextCron returns the first minute after now that matches the five cron fields, for the
// forms CronSchedule writes ("*", "N", "A-B/N", "*/N").
func NextCron(schedule string, now time.Time) (time.Time, bool) {
	f := strings.Fields(schedule)
	if len(f) != 5 {
		return time.Time{}, false
	}
	t := now.Truncate(time.Minute).Add(time.Minute)
	for i := 0; i < 60*24*62; i++ {
		if cronField(f[0], t.Minute(), 0, 59) && cronField(f[1], t.Hour(), 0, 23) && cronField(f[2], t.Day(), 1, 31) &&
			cronField(f[3], int(t.Month()), 1, 12) && cronField(f[4], int(t.Weekday()), 0, 6) {
			return t, true
		}
		t = t.Add(time.Minute)
	}
	return time.Time{}, false
}

func cronField(field string, v, lo, hi int) bool {
	rng, step := field, 1
	if a, b, ok := strings.Cut(field, "/"); ok {
		rng = a
		n, err := strconv.Atoi(b)
		if err != nil || n <= 0 {
			return false
		}
		step = n
	}
	from, to := lo, hi
	switch {
	case rng == "*":
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil {
			return false
		}
		from, to = x, y
	default:
		x, err := strconv.Atoi(rng)
		if err != nil {
			return false
		}
		if step == 1 {
			return v == x
		}
		from = x
	}
	return v >= from && v <= to && (v-from)%step == 0
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
