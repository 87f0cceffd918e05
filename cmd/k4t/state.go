package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
	"k4t.io/k4t/pkg/schedule"
)

func init() {
	register(func(g *globalFlags) *cobra.Command {
		c := &cobra.Command{Use: "state", Short: "Copies of k4t's state dir on the cluster's hosts (spec.stateBackup)"}
		c.AddCommand(stateBackupCmd(g), stateListCmd(g), stateRestoreCmd(g))
		return c
	})
}

func stateBackupCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun, sched, remove, status bool
	p := &phases.StateBackup{}
	c := &cobra.Command{
		Use:   "backup -f hosts.yaml [--due] [--dry-run] | --schedule | --status | --remove",
		Short: "Copy the state dir, encrypted, to every spec.stateBackup target",
		Long: `Archives the state dir (without logs/ and backups/), seals it with age to the
cluster's own recipient and writes it atomically into /var/lib/k4t/state-backups/CLUSTER/
(0700) on each target of spec.stateBackup, keeping each target's newest 'keep' copies. A
target whose last copy has the same content gets none. The identity that opens the
copies is created on the first backup, kept in the state dir's secrets, and printed once:
keep it apart from the bastion, 'k4t state restore --identity FILE' needs it. --due copies
only to targets whose last copy is older than their 'every' (for a scheduled run).

--schedule installs on this machine (the bastion) a job that runs 'k4t state backup --due'
at the shortest 'every' of the targets, so each target gets a copy on its own interval:
a systemd timer when systemd is PID 1, otherwise an /etc/cron.d entry. It logs to the
state dir (logs/state-backup.log). --status shows it and its last run; --remove takes it
away (the copies stay on the targets).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, on := range []bool{sched, remove, status} {
				if on {
					n++
				}
			}
			if n > 1 || n == 1 && (dryRun || p.Due) {
				return usagef("--schedule, --status and --remove go one at a time, without --due or --dry-run")
			}
			if n == 1 {
				return stateSchedule(cmd, g, hf, sched, remove)
			}
			return withHostsRun(cmd, g, hf, dryRun, func(s *session, r *engine.Run) error {
				if _, err := (&engine.Engine{Run: r, Phases: []engine.Phase{p}}).Execute(cmdContext(cmd)); err != nil {
					return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
				}
				if p.Identity != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "A new identity opens the copies; it is in %s. Keep a copy apart from this bastion:\n%s",
						s.state.Path("secrets", "state-backup-identity.txt"), p.Identity)
				}
				for _, w := range p.Written {
					fmt.Fprintf(cmd.ErrOrStderr(), "copied: %s\n", w)
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().BoolVar(&p.Due, "due", false, "copy only to targets whose last copy is older than their 'every'")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show which targets would get a copy; change nothing")
	c.Flags().BoolVar(&sched, "schedule", false, "install a bastion timer (or cron entry) that copies to each target on its own 'every'")
	c.Flags().BoolVar(&status, "status", false, "show the scheduled job, its next run and its last result")
	c.Flags().BoolVar(&remove, "remove", false, "take the scheduled job away")
	return c
}

// stateSchedule installs (install), removes (remove) or shows the bastion job.
func stateSchedule(cmd *cobra.Command, g *globalFlags, hf hostsFlags, install, remove bool) error {
	cl, st, err := inventoryAndState(cmd, g, hf)
	if err != nil {
		return err
	}
	sch := &schedule.Scheduler{}
	ctx := cmdContext(cmd)
	out := cmd.OutOrStdout()
	switch {
	case remove:
		removed, err := phases.RemoveStateSchedule(ctx, sch, st, cl.Metadata.Name)
		return printRemoved(out, removed, err, "no state backup schedule was installed for cluster "+cl.Metadata.Name)
	case !install:
		stt, err := phases.StateScheduleStatus(ctx, sch, st, cl.Metadata.Name, time.Now())
		if err != nil {
			return err
		}
		return printScheduleStatus(cmd, g.Output(), stt, jobWords{
			install: "k4t state backup --schedule -f hosts.yaml",
			failed:  "the last scheduled state backup failed — read the log above, fix, and run `k4t state backup -f hosts.yaml`",
		})
	}
	if len(cl.Spec.StateBackup.Targets) == 0 {
		return usagef("spec.stateBackup has no targets: list them in %s, e.g. spec.stateBackup: {targets: [{host: master1, every: 2m, keep: 30}]}", hf.file)
	}
	bin, inv, root, err := jobPaths(g, hf)
	if err != nil {
		return err
	}
	// The identity is shown once, when it is made: here, not in the job's log.
	if _, identity, created, err := st.BackupRecipient(); err != nil {
		return err
	} else if created {
		fmt.Fprintf(cmd.ErrOrStderr(), "A new identity opens the copies; it is in %s. Keep a copy apart from this bastion:\n%s",
			st.Path("secrets", "state-backup-identity.txt"), identity)
	}
	tick := phases.StateBackupTick(cl.Spec.StateBackup.Targets)
	info, warning, err := phases.InstallStateSchedule(ctx, sch, st, phases.StateBackupJob(st, cl.Metadata.Name, bin, root, inv, tick))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "installed %s: %s\n", info.Kind, strings.Join(info.Files, ", "))
	fmt.Fprintf(out, "every %s it runs %s (k4t state backup --due); log: %s\n", info.Every, phases.StateJobPath(st), phases.StateLogPath(st))
	for _, t := range cl.Spec.StateBackup.Targets {
		fmt.Fprintf(out, "  %s: a copy every %s when the state dir changed, the newest %d kept\n", t.Host, t.Every, t.Keep)
	}
	if warning != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: "+warning)
	}
	return nil
}

func stateListCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var from string
	c := &cobra.Command{
		Use:   "list --from HOST -f hosts.yaml",
		Short: "List the copies of the state dir on a host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withHostsRun(cmd, g, hf, true, func(s *session, r *engine.Run) error {
				h := r.Cluster.Host(from)
				if h == nil {
					return usagef("--from %q is not a host of the inventory", from)
				}
				copies, err := phases.ListStateCopies(cmdContext(cmd), r, h)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TIME\tSIZE\tFILE")
				for _, c := range copies {
					fmt.Fprintf(w, "%s\t%d\t%s\n", c.Time.Format(time.RFC3339), c.Size, c.File)
				}
				return w.Flush()
			})
		},
	}
	hf.bind(c)
	c.Flags().StringVar(&from, "from", "", "the host holding the copies")
	return c
}

func stateRestoreCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var from, identity, at string
	c := &cobra.Command{
		Use:   "restore --from HOST --identity FILE [--at TIME] -f hosts.yaml",
		Short: "Rebuild a lost bastion's state dir from a copy on a host",
		Long: `Fetches the newest copy of the state dir from HOST (or the newest at or before --at,
e.g. 2026-12-01T10:00:00Z), opens it with the identity 'k4t state backup' printed, and
unpacks it into the state dir, which must not hold the cluster's CA yet. Afterwards
'k4t plan' against the running cluster shows what it would change (nothing, if the copy
is recent).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || identity == "" {
				return usagef("--from and --identity are needed")
			}
			var when time.Time
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usagef("--at %q: use RFC 3339, e.g. 2026-12-01T10:00:00Z", at)
				}
				when = t
			}
			id, err := os.ReadFile(identity)
			if err != nil {
				return usagef("--identity: %v", err)
			}
			return withHostsRun(cmd, g, hf, true, func(s *session, r *engine.Run) error {
				h := r.Cluster.Host(from)
				if h == nil {
					return usagef("--from %q is not a host of the inventory", from)
				}
				c, n, err := phases.RestoreState(cmdContext(cmd), r, h, when, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "restored %d files into %s from %s:%s (%s)\n", n, s.state.Root, from, c.File, c.Time.Format(time.RFC3339))
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().StringVar(&from, "from", "", "the host holding the copies")
	c.Flags().StringVar(&identity, "identity", "", "the age identity file 'k4t state backup' printed")
	c.Flags().StringVar(&at, "at", "", "the newest copy at or before this time (RFC 3339)")
	return c
}
