package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/action"
	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

func init() { register(upgradeCmd) }

func upgradeCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun, step bool
	o := phases.UpgradeOptions{Drain: phases.DrainOptions{Timeout: 5 * time.Minute}}
	c := &cobra.Command{
		Use:   "upgrade -f hosts.yaml",
		Short: "Upgrade Kubernetes to the inventory's spec.kubernetes.version, one node at a time",
		Long: `Upgrades the cluster to spec.kubernetes.version, keeping it serving. One minor at a time:
with --step, a target several minors ahead is reached through the newest patch of each
minor in between whose artifact set is on the bastion. Each version's run:

  1. preflight, changing nothing: no downgrade, no skipped minor, no kubelet ahead; every
     node Ready and etcd healthy with all members; no certificate expiring within a day;
     the target's artifacts present and verified; PodDisruptionBudgets that would block
     a drain named up front;
  2. a verified etcd snapshot into the state dir (backups/etcd/, the newest --keep-snapshots);
  3. the target's images onto every node;
  4. masters one at a time, the first with 'kubeadm upgrade apply', the others with
     'kubeadm upgrade node': out of HAProxy, cordon and drain, new kubeadm, kubeadm
     upgrade, new kubelet and kubectl, kubelet restart, /readyz and etcd health, node
     Ready, uncordon, back into HAProxy;
  5. workers, --max-unavailable at a time: cordon and drain, kubeadm upgrade node, new
     kubelet, Ready, uncordon.

A failure stops the roll: the nodes already upgraded serve, the failing node stays
cordoned (and out of HAProxy). Fix the cause and run k4t upgrade again: it carries on
from where it stopped, as it does after a kill -9. Nothing needs unlocking by hand.
--dry-run prints every step, host by host, without changing anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRun(cmd, g, hf, dryRun, true, func(s *session, r *engine.Run) error {
				ctx := cmdContext(cmd)
				target := s.cluster.Spec.Kubernetes.Version
				path := []string{target}
				if step {
					if a := s.cluster.Spec.Artifacts; a.Source != v1alpha1.ArtifactsBuild {
						return usagef("--step finds each minor's artifact set among those built under %s (spec.artifacts.source: build); with upstream releases, a manifest or a bundle, upgrade one minor at a time: set spec.kubernetes.version to the next minor's release and run k4t upgrade again", artifacts.DefaultCacheRoot())
					}
					current, err := phases.ControlPlaneVersion(ctx, r)
					if err != nil {
						return err
					}
					if path, err = phases.UpgradePath(current, target, artifacts.CachedVersions("")); err != nil {
						return usageError{err}
					}
					s.events.Infof("upgrade", "", "%s → %s goes through %s", current, target, strings.Join(path, " → "))
				}
				runFor := target // the version r's artifact store holds
				for i, v := range path {
					if i > 0 && dryRun {
						s.events.Infof("upgrade", "", "then %s: planned once the cluster runs %s", strings.Join(path[i:], ", then "), path[i-1])
						break
					}
					if v != runFor { // a step: a new run with that version's artifacts
						s.cluster.Spec.Kubernetes.Version, runFor = v, v
						var err error
						if r, err = s.run(dryRun, true); err != nil {
							return err
						}
						defer r.Journal.Close()
						if err := leaveOutRemoved(s, r); err != nil {
							return err
						}
					}
					start := time.Now()
					sum, err := (&engine.Engine{Run: r, Phases: action.Upgrade(&o)}).Execute(ctx)
					if err != nil {
						return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
					}
					if !dryRun && sum.Changes > 0 {
						s.events.Infof("upgrade", "", "cluster at %s in %s", v, time.Since(start).Round(time.Second))
					}
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print every step, host by host; change nothing")
	c.Flags().BoolVar(&step, "step", false, "go through each minor between the cluster's and the target, using the newest patch whose artifact set is here")
	c.Flags().DurationVar(&o.Drain.Timeout, "drain-timeout", o.Drain.Timeout, "give up a node's drain after this long, naming the PodDisruptionBudget that blocks")
	c.Flags().IntVar(&o.MaxUnavailable, "max-unavailable", 1, "workers upgraded at once")
	c.Flags().IntVar(&o.KeepSnapshots, "keep-snapshots", 5, "etcd snapshots kept in the state dir")
	c.Flags().DurationVar(&o.ReadyTimeout, "ready-timeout", 5*time.Minute, "how long each node may take to be healthy after its upgrade")
	return c
}
