package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/action"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
	"k4t.io/k4t/pkg/templates"
)

func init() {
	register(func(g *globalFlags) *cobra.Command {
		c := &cobra.Command{Use: "etcd", Short: "etcd snapshots of the cluster"}
		c.AddCommand(etcdBackupCmd(g), etcdRestoreCmd(g))
		return c
	})
}

func etcdBackupCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun, schedule, collect, status, remove bool
	var every time.Duration
	b := &phases.EtcdBackup{}
	c := &cobra.Command{
		Use:   "backup -f hosts.yaml",
		Short: "Take a verified etcd snapshot into the state dir (backups/etcd/); schedule snapshots on the members",
		Long: `Takes a snapshot with etcdctl from a healthy follower (the leader only when no follower
answers), checks it with etcdutl snapshot status, copies it to the state dir's
backups/etcd/backup-TIME.db with its .sha256, removes the host's copy, keeps the newest
--keep snapshots, and prints its revision, key count and size. The snapshot holds the
cluster's Secrets: it is 0600 in a 0700 directory, like the rest of the state dir.

Scheduled snapshots run on the etcd members themselves, so they go on with the bastion
switched off:
  --schedule --every 1h --keep 24  a systemd timer on every member, each at its own
                                   offset, snapshots that member into ` + templates.EtcdSnapshotDir + `
                                   (checked with etcdutl, with its sha256; newest --keep kept)
  --collect                        copies the newest snapshot of each member to the state dir
  --status                         each member's timer, last run and newest snapshot
  --remove                         takes the timers away (the snapshots stay)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, on := range []bool{schedule, collect, status, remove} {
				if on {
					n++
				}
			}
			if n > 1 {
				return usagef("--schedule, --collect, --status and --remove go one at a time")
			}
			if schedule && !cmd.Flags().Changed("keep") {
				b.Keep = 24
			}
			return withHostsRun(cmd, g, hf, dryRun, func(s *session, r *engine.Run) error {
				ctx := cmdContext(cmd)
				var ps []engine.Phase
				var col *phases.EtcdSnapshotCollect
				switch {
				case status:
					return printSnapshotSchedules(cmd, g, phases.SnapshotSchedules(ctx, r))
				case schedule:
					ps = action.EtcdBackupSchedule(&phases.EtcdSnapshotSchedule{Every: every, Keep: b.Keep})
				case remove:
					ps = action.EtcdBackupUnschedule()
				case collect:
					col = &phases.EtcdSnapshotCollect{Keep: b.Keep}
					ps = action.EtcdBackupCollect(col)
				default:
					ps = action.EtcdBackup(b)
				}
				if _, err := (&engine.Engine{Run: r, Phases: ps}).Execute(ctx); err != nil {
					return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
				}
				if b.Took != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "snapshot: %s (revision %d, %d keys, %d bytes, from %s)\n", b.Took.Path, b.Took.Revision, b.Took.Keys, b.Took.Size, b.Took.Member)
				}
				if col != nil && !dryRun {
					fmt.Fprintf(cmd.ErrOrStderr(), "collected %d new snapshot(s) into %s\n", len(col.Collected), phases.SnapshotDir(r))
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().IntVar(&b.Keep, "keep", 10, "snapshots kept in the state dir (older ones are deleted); with --schedule, on each member (default 24)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be done; change nothing")
	c.Flags().BoolVar(&schedule, "schedule", false, "install a snapshot timer on every etcd member")
	c.Flags().DurationVar(&every, "every", time.Hour, "with --schedule: how often each member snapshots itself")
	c.Flags().BoolVar(&collect, "collect", false, "copy the newest scheduled snapshot of each member to the state dir")
	c.Flags().BoolVar(&status, "status", false, "show each member's scheduled snapshots")
	c.Flags().BoolVar(&remove, "remove", false, "remove the snapshot timers (the snapshots on the members stay)")
	return c
}

// printSnapshotSchedules writes the members' scheduled snapshots as a
// table, or as JSON with -o json.
func printSnapshotSchedules(cmd *cobra.Command, g *globalFlags, sts []phases.SnapshotScheduleStatus) error {
	if g.Output() == "json" {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(sts)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MEMBER\tTIMER\tLAST RUN\tRESULT\tNEWEST SNAPSHOT\tAGE\tCOUNT")
	failed := false
	for _, st := range sts {
		last, result, age := "-", "-", "-"
		if st.Last != nil {
			last, result = st.Last.End, "ok"
			if st.Last.ExitCode != 0 {
				result, failed = fmt.Sprintf("failed (exit %d)", st.Last.ExitCode), true
			}
		}
		if st.Newest != "" {
			age = st.NewestAge.Round(time.Second).String()
		}
		if st.Error != "" {
			result, failed = "error: "+st.Error, true
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", st.Member, orDash(st.Timer), last, result, orDash(st.Newest), age, st.Count)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if failed {
		return fmt.Errorf("a member's last scheduled snapshot failed or it did not answer: see journalctl -u %s on it", templates.EtcdSnapshotUnit)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func etcdRestoreCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun, yes bool
	x := &phases.EtcdRestoration{}
	c := &cobra.Command{
		Use:   "restore --from FILE|latest -f hosts.yaml",
		Short: "Restore every etcd member from one snapshot (the API is down meanwhile)",
		Long: `Restores the cluster's etcd from a snapshot, as etcd's disaster-recovery guide says:

 1. the snapshot's sha256 is checked against its .sha256 file; it is copied to every
    member and restored there beside the data dir (etcdutl checks its hash), while
    everything still runs: a bad snapshot stops the restore before anything stops;
 2. every kube-apiserver, controller-manager and scheduler stops (manifests aside);
 3. etcd stops on every member; each data dir is moved aside (never deleted) and the
    restored one takes its place: a new cluster (new token), its revision bumped by
    --bump-revision and the old revisions marked compacted, so watchers relist;
 4. the members start together, and must all be healthy with the same hashkv;
 5. the control planes start again (fresh controller-manager and scheduler); every
    kubelet restarts; every node must be Ready.

The API is down from step 2 to step 5. A restore that stopped half-way (a failure,
a kill) is finished by running it again with the same snapshot; until then other
commands refuse to run. --from latest is the newest snapshot in the state dir.
Asks for confirmation unless --yes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if x.From == "" {
				return usagef("--from: name a snapshot file, or latest")
			}
			return withHostsRun(cmd, g, hf, dryRun, func(s *session, r *engine.Run) error {
				if err := x.Resolve(r); err != nil {
					return err
				}
				if !dryRun && !yes {
					what := fmt.Sprintf("This restores cluster %q from %s: every change to the cluster since that snapshot is lost, and its API is down until the restore ends.", s.cluster.Metadata.Name, x.Snapshot)
					if x.Resumed {
						what = fmt.Sprintf("This finishes restore %s of cluster %q from %s, which stopped half-way.", x.ID, s.cluster.Metadata.Name, x.Snapshot)
					}
					if err := confirm(cmd, what); err != nil {
						return err
					}
				}
				if _, err := (&engine.Engine{Run: r, Phases: action.EtcdRestore(x)}).Execute(cmdContext(cmd)); err != nil {
					where := ""
					if pending, _ := phases.RestorePending(r); pending != "" {
						where = "\nthe members now:\n  " + strings.Join(x.MemberStates(cmdContext(cmd), r), "\n  ") +
							"\nthe control planes' manifests wait in " + templates.EtcdRestorePaused + " until the restore finishes"
					}
					return fmt.Errorf("%w%s\n(a restore that stopped is finished by running it again: k4t etcd restore --from %s)\n(full log: %s)", err, where, x.Snapshot, s.logFile.Name())
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().StringVar(&x.From, "from", "", "the snapshot file, or latest (the newest in the state dir's backups/etcd)")
	c.Flags().Int64Var(&x.BumpRevision, "bump-revision", templates.DefaultBumpRevision, "move etcd's revision forward by this much, so watchers relist")
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show each step; change nothing")
	return c
}
