// Package schedule installs jobs on the bastion (the machine k4t runs on):
// a systemd timer when systemd is PID 1, otherwise an /etc/cron.d entry.
// It knows nothing of what a job does; certificate renewal, etcd backup
// collection and state copies each render their own files and hand them
// here.
package schedule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Kind of an installed schedule.
type Kind = string

const (
	Systemd Kind = "systemd-timer"
	Cron    Kind = "cron"
)

// Where schedules go on the bastion.
const (
	SystemdUnitDir = "/etc/systemd/system"
	CronDir        = "/etc/cron.d"
)

// Scheduler installs, removes and reports jobs on this machine.
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

// Job is one scheduled job, rendered by its owner.
type Job struct {
	// Name of the unit (NAME.service, NAME.timer) or the cron.d file.
	Name string
	// Script is the job script the unit or entry runs (named in errors).
	Script string
	// Service and Timer are the systemd files; Cron the /etc/cron.d entry.
	Service, Timer, Cron []byte
}

// Installed is what Install put in place.
type Installed struct {
	Kind  Kind
	Files []string
	// Warning: installed, but it will not run yet (cron not running).
	Warning string
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

// Systemd reports whether systemd is PID 1 here.
func (s *Scheduler) Systemd() bool { return s.initName() == "systemd" }

func (s *Scheduler) initName() string {
	if s.InitName != nil {
		return s.InitName()
	}
	b, _ := os.ReadFile("/proc/1/comm")
	return strings.TrimSpace(string(b))
}

// CronDaemonState is the cron daemon's path ("" if none) and whether it runs.
func (s *Scheduler) CronDaemonState() (string, bool) {
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

// Install puts the job's timer and service in place and starts the timer
// (systemd as PID 1), or writes its cron entry, replacing an earlier one of
// the same name.
func (s *Scheduler) Install(ctx context.Context, j Job) (*Installed, error) {
	init := s.initName()
	if init == "systemd" {
		unitDir := s.path(SystemdUnitDir)
		for p, b := range map[string][]byte{filepath.Join(unitDir, j.Name+".service"): j.Service, filepath.Join(unitDir, j.Name+".timer"): j.Timer} {
			if err := writeLocal(p, b, 0o644); err != nil {
				return nil, err
			}
		}
		if _, err := s.exec(ctx, "systemctl", "daemon-reload"); err != nil {
			return nil, err
		}
		if _, err := s.exec(ctx, "systemctl", "enable", "--now", j.Name+".timer"); err != nil {
			return nil, err
		}
		return &Installed{Kind: Systemd, Files: []string{SystemdUnitDir + "/" + j.Name + ".service", SystemdUnitDir + "/" + j.Name + ".timer"}}, nil
	}
	daemon, running := s.CronDaemonState()
	if daemon == "" {
		return nil, fmt.Errorf("schedule: this machine has no systemd as PID 1 (PID 1 is %q) and no cron daemon is installed — install cron (`apt-get install cron`, then start it) and re-run, or run %s from your own scheduler (it is written)", init, j.Script)
	}
	if err := writeLocal(s.path(CronDir+"/"+j.Name), j.Cron, 0o644); err != nil {
		return nil, err
	}
	in := &Installed{Kind: Cron, Files: []string{CronDir + "/" + j.Name}}
	if !running {
		in.Warning = fmt.Sprintf("cron (%s) is installed but not running: the entry runs only once it is started (e.g. `service cron start`)", daemon)
	}
	return in, nil
}

func writeLocal(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("schedule: %w — run k4t as root to install a schedule", err)
	}
	tmp := path + ".k4t-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("schedule: %w — run k4t as root to install a schedule", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Remove stops and disables the job's timer and removes its files (and
// extra, e.g. the job script), returning what it removed.
func (s *Scheduler) Remove(ctx context.Context, name string, extra ...string) (removed []string, err error) {
	timer := s.path(SystemdUnitDir + "/" + name + ".timer")
	if _, err := os.Stat(timer); err == nil && s.Systemd() {
		if _, err := s.exec(ctx, "systemctl", "disable", "--now", name+".timer"); err != nil {
			return nil, err
		}
	}
	for _, p := range append([]string{timer, s.path(SystemdUnitDir + "/" + name + ".service"), s.path(CronDir + "/" + name)}, extra...) {
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("schedule: removing %s: %w", p, err)
		}
	}
	if len(removed) > 0 && s.Systemd() {
		if _, err := s.exec(ctx, "systemctl", "daemon-reload"); err != nil {
			return removed, fmt.Errorf("schedule: removed %s, but %w", strings.Join(removed, ", "), err)
		}
	}
	return removed, nil
}

// NextRun says when the job runs next (systemd's word, or computed from
// the cron fields), with a warning when it will not run at all.
func (s *Scheduler) NextRun(ctx context.Context, kind Kind, name, cronFields string, now time.Time) (next, warning string) {
	switch kind {
	case Systemd:
		b, err := s.exec(ctx, "systemctl", "show", "-p", "NextElapseUSecRealtime", "--value", name+".timer")
		if err != nil {
			warning = err.Error()
		}
		next = strings.TrimSpace(string(b))
	case Cron:
		if t, ok := NextCron(cronFields, now); ok {
			next = t.Format(time.RFC3339)
		}
		if _, running := s.CronDaemonState(); !running {
			warning = "cron is not running: nothing will run until it is started"
		}
	}
	return next, warning
}
