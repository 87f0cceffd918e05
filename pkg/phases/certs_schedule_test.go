package phases

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/schedule"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
)

func scheduleEnv(t *testing.T) (*state.Dir, templates.CertsJobInput) {
	t.Helper()
	root := t.TempDir()
	st, err := state.Open(root, "lab")
	if err != nil {
		t.Fatal(err)
	}
	return st, CertsJobInput(st, "lab", "/usr/local/bin/k4t", root, "/root/hosts.yaml", 24*time.Hour, 30*24*time.Hour)
}

func TestScheduleCronWithoutSystemd(t *testing.T) {
	st, in := scheduleEnv(t)
	s := &schedule.Scheduler{Root: t.TempDir(), InitName: func() string { return "process_api" },
		CronDaemon: func() (string, bool) { return "/usr/sbin/cron", false },
		Exec: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			t.Errorf("ran %s %v without systemd", name, args)
			return nil, nil
		}}
	info, warn, err := InstallCertsSchedule(context.Background(), s, st, in)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != schedule.Cron || !strings.Contains(warn, "not running") {
		t.Errorf("info %+v warn %q", info, warn)
	}
	b, err := os.ReadFile(filepath.Join(s.Root, "etc/cron.d/k4t-certs-lab"))
	if err != nil || !strings.Contains(string(b), "root "+in.Job) {
		t.Fatalf("cron entry: %v\n%s", err, b)
	}
	if fi, err := os.Stat(in.Job); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("job script: %v", err)
	}
	// The job ran once and failed: status shows it.
	os.WriteFile(CertsStatusPath(st), []byte(`{"start":"2026-11-22T10:00:00Z","end":"2026-11-22T10:03:00Z","exitCode":1}`), 0o600)
	os.WriteFile(CertsLogPath(st), []byte("== start\nmaster2 / certs: boom\n== exit 1\n"), 0o600)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	stt, err := CertsScheduleStatus(context.Background(), s, st, "lab", now)
	if err != nil {
		t.Fatal(err)
	}
	if !stt.Installed || stt.Last == nil || stt.Last.ExitCode != 1 || len(stt.LogTail) != 3 || !strings.Contains(stt.Warning, "cron is not running") {
		t.Errorf("status %+v", stt)
	}
	next, err := time.Parse(time.RFC3339, stt.NextRun)
	if err != nil || !next.After(now) || next.Sub(now) > 24*time.Hour {
		t.Errorf("next run %q (%v)", stt.NextRun, err)
	}
	removed, err := RemoveCertsSchedule(context.Background(), s, st, "lab")
	if err != nil || len(removed) != 3 {
		t.Errorf("removed %v: %v", removed, err)
	}
	if stt, _ := CertsScheduleStatus(context.Background(), s, st, "lab", now); stt.Installed {
		t.Error("still installed after --remove")
	}
}

func TestScheduleNoCronSaysSo(t *testing.T) {
	st, in := scheduleEnv(t)
	s := &schedule.Scheduler{Root: t.TempDir(), InitName: func() string { return "process_api" }, CronDaemon: func() (string, bool) { return "", false }}
	_, _, err := InstallCertsSchedule(context.Background(), s, st, in)
	if err == nil || !strings.Contains(err.Error(), "no cron daemon is installed") || !strings.Contains(err.Error(), "apt-get install cron") || !strings.Contains(err.Error(), "process_api") {
		t.Errorf("err %v", err)
	}
}

func TestScheduleSystemdTimer(t *testing.T) {
	st, in := scheduleEnv(t)
	var ran []string
	s := &schedule.Scheduler{Root: t.TempDir(), InitName: func() string { return "systemd" },
		Exec: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			ran = append(ran, name+" "+strings.Join(args, " "))
			if len(args) > 0 && args[0] == "show" {
				return []byte("Mon 2026-11-23 10:00:00 UTC\n"), nil
			}
			return nil, nil
		}}
	info, _, err := InstallCertsSchedule(context.Background(), s, st, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"k4t-certs-lab.service", "k4t-certs-lab.timer"} {
		if _, err := os.Stat(filepath.Join(s.Root, "etc/systemd/system", f)); err != nil {
			t.Error(err)
		}
	}
	if info.Kind != schedule.Systemd || strings.Join(ran, "; ") != "systemctl daemon-reload; systemctl enable --now k4t-certs-lab.timer" {
		t.Errorf("%+v ran %v", info, ran)
	}
	stt, _ := CertsScheduleStatus(context.Background(), s, st, "lab", time.Now())
	if stt.NextRun != "Mon 2026-11-23 10:00:00 UTC" || stt.Last != nil {
		t.Errorf("status %+v", stt)
	}
	ran = nil
	if _, err := RemoveCertsSchedule(context.Background(), s, st, "lab"); err != nil || !strings.Contains(strings.Join(ran, ";"), "disable --now k4t-certs-lab.timer") {
		t.Errorf("remove ran %v: %v", ran, err)
	}
}
