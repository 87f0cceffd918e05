package phases

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/schedule"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
)

// `k4t state backup --schedule`: a bastion job that runs `k4t state backup
// --due` at the shortest interval of the targets, so each target gets a
// copy on its own interval (and only when the state dir changed).

// Paths of the scheduled state backup's files in a cluster's state dir.
func StateJobPath(st *state.Dir) string    { return st.Path("state-backup-job.sh") }
func StateLogPath(st *state.Dir) string    { return filepath.Join(st.Logs(), "state-backup.log") }
func StateStatusPath(st *state.Dir) string { return st.Path("state-backup.status.json") }
func stateInfoPath(st *state.Dir) string   { return st.Path("state-backup-schedule.json") }

// StateUnitName names the timer, service and cron file of a cluster's
// scheduled state backup.
func StateUnitName(cluster string) string { return templates.JobUnitName("k4t-state-backup-", cluster) }

// StateBackupTick is how often the scheduled job runs: the shortest
// `every` of the targets, stepped down to an interval cron can count (it
// counts calendar fields), so no target waits longer than its own.
func StateBackupTick(targets []v1alpha1.StateBackupTarget) time.Duration {
	tick := time.Duration(0)
	for _, t := range targets {
		if tick == 0 || t.Every.Duration < tick {
			tick = t.Every.Duration
		}
	}
	tick = tick.Truncate(time.Minute)
	for ; tick > time.Minute; tick -= time.Minute {
		if _, err := templates.CronSchedule(tick, ""); err == nil {
			return tick
		}
	}
	return time.Minute
}

// StateBackupJob is the scheduled state backup of a cluster as a bastion job.
func StateBackupJob(st *state.Dir, cluster, binary, stateRoot, inventory string, tick time.Duration) templates.BastionJob {
	return templates.BastionJob{Unit: StateUnitName(cluster), By: "state backup --schedule",
		Title: "copy the state dir of cluster " + cluster + " to its stateBackup targets",
		Does:  "copies the state dir of cluster " + cluster + ", encrypted, to each spec.stateBackup\n# target whose last copy is older than its 'every' and out of date",
		Args:  "state backup --due", Cluster: cluster, Binary: binary, StateRoot: stateRoot, Inventory: inventory,
		Log: StateLogPath(st), Status: StateStatusPath(st), Lock: st.Path("state-backup-job.lock"), Job: StateJobPath(st), Every: tick}
}

// InstallStateSchedule installs the job (a systemd timer, or a cron entry),
// replacing an earlier one of the same cluster.
func InstallStateSchedule(ctx context.Context, s *schedule.Scheduler, st *state.Dir, j templates.BastionJob) (*ScheduleInfo, string, error) {
	info := &ScheduleInfo{}
	warning, err := installBastionJob(ctx, s, st, j, info, stateInfoPath(st))
	if err != nil {
		return nil, "", fmt.Errorf("%s / %w", stateBackupPhase, err)
	}
	return info, warning, nil
}

// RemoveStateSchedule takes the job away; its log and last result stay, as
// do the copies on the targets.
func RemoveStateSchedule(ctx context.Context, s *schedule.Scheduler, st *state.Dir, cluster string) ([]string, error) {
	removed, err := s.Remove(ctx, StateUnitName(cluster), stateInfoPath(st), StateJobPath(st))
	if err != nil {
		return removed, fmt.Errorf("%s / %w", stateBackupPhase, err)
	}
	return removed, nil
}

// StateScheduleStatus reports the job, its next run and its last result.
func StateScheduleStatus(ctx context.Context, s *schedule.Scheduler, st *state.Dir, cluster string, now time.Time) (*ScheduleStatus, error) {
	out, err := bastionJobStatus(ctx, s, StateUnitName(cluster), stateInfoPath(st), StateStatusPath(st), StateLogPath(st), now)
	if err != nil {
		return nil, fmt.Errorf("%s / %w", stateBackupPhase, err)
	}
	out.Job = StateJobPath(st)
	return out, nil
}
