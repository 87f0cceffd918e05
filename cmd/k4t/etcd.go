package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/action"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

func init() {
	register(func(g *globalFlags) *cobra.Command {
		c := &cobra.Command{Use: "etcd", Short: "etcd snapshots of the cluster"}
		c.AddCommand(etcdBackupCmd(g))
		return c
	})
}

func etcdBackupCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun bool
	b := &phases.EtcdBackup{}
	c := &cobra.Command{
		Use:   "backup -f hosts.yaml",
		Short: "Take a verified etcd snapshot into the state dir (backups/etcd/)",
		Long: `Takes a snapshot with etcdctl from a healthy follower (the leader only when no follower
answers), checks it with etcdutl snapshot status, copies it to the state dir's
backups/etcd/backup-TIME.db with its .sha256, removes the host's copy, keeps the newest
--keep snapshots, and prints its revision, key count and size. The snapshot holds the
cluster's Secrets: it is 0600 in a 0700 directory, like the rest of the state dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withHostsRun(cmd, g, hf, dryRun, func(s *session, r *engine.Run) error {
				if _, err := (&engine.Engine{Run: r, Phases: action.EtcdBackup(b)}).Execute(cmdContext(cmd)); err != nil {
					return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
				}
				if b.Took != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "snapshot: %s (revision %d, %d keys, %d bytes, from %s)\n", b.Took.Path, b.Took.Revision, b.Took.Keys, b.Took.Size, b.Took.Member)
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().IntVar(&b.Keep, "keep", 10, "snapshots kept in the state dir (older ones are deleted)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show which member would be snapshotted; change nothing")
	return c
}
