package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"k4t.io/k4t/pkg/schedule"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
)

// installBastionJob writes j's script into the state dir, has s install it
// (a systemd timer, or a cron entry) and records what it installed in
// info, written to infoPath.
func installBastionJob(ctx context.Context, s *schedule.Scheduler, st *state.Dir, j templates.BastionJob, info *ScheduleInfo, infoPath string) (warning string, err error) {
	script, err := j.Script()
	if err != nil {
		return "", err
	}
	sj := schedule.Job{Name: j.Unit, Script: j.Job}
	if sj.Service, err = j.Service(); err != nil {
		return "", err
	}
	if sj.Timer, err = j.Timer(); err != nil {
		return "", err
	}
	if sj.Cron, err = j.Cron(); err != nil {
		return "", err
	}
	if err := st.WriteFile(j.Job, script, 0o700); err != nil {
		return "", fmt.Errorf("writing %s: %w", j.Job, err)
	}
	installed, err := s.Install(ctx, sj)
	if err != nil {
		return "", err
	}
	info.Kind, info.Files, info.Every, info.Installed = installed.Kind, installed.Files, templates.FormatDays(j.Every), time.Now().UTC()
	if installed.Kind == schedule.Cron {
		info.Schedule, _ = templates.CronSchedule(j.Every, j.Unit)
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := st.WriteFile(infoPath, append(b, '\n'), 0o600); err != nil {
		return "", err
	}
	return installed.Warning, nil
}

// bastionJobStatus reports whether a job is installed, its next run, its
// last result and the tail of its log.
func bastionJobStatus(ctx context.Context, s *schedule.Scheduler, unit, infoPath, statusPath, logPath string, now time.Time) (*ScheduleStatus, error) {
	out := &ScheduleStatus{Log: logPath}
	if b, err := os.ReadFile(infoPath); err == nil {
		var info ScheduleInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return nil, fmt.Errorf("schedule: %s: %w — remove it with --remove and install again", infoPath, err)
		}
		out.Info, out.Installed = &info, info.Kind != ""
		out.NextRun, out.Warning = s.NextRun(ctx, info.Kind, unit, info.Schedule, now)
	}
	if b, err := os.ReadFile(statusPath); err == nil {
		var last JobResult
		if json.Unmarshal(b, &last) == nil {
			out.Last = &last
		}
	}
	if b, err := os.ReadFile(logPath); err == nil {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		out.LogTail = lines
	}
	return out, nil
}
