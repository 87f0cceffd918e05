package main

import (
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

func init() {
	register(drainCmd)
	register(uncordonCmd)
}

func drainCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var o phases.DrainOptions
	var dryRun bool
	c := &cobra.Command{
		Use:   "drain NODE -f hosts.yaml",
		Short: "Cordon a node and evict its pods, respecting PodDisruptionBudgets",
		Long: `Cordons NODE and evicts its pods through the Kubernetes API (reached over the SSH
connection to the first master), as kubectl drain does: DaemonSet pods stay, emptyDir
data goes, an eviction a PodDisruptionBudget refuses is retried every 2s until --timeout,
and a PodDisruptionBudget still blocking then is named in the error. --disable-eviction
deletes the pods instead, bypassing PodDisruptionBudgets: never the default.
--dry-run lists the pods it would evict.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withHostsRun(cmd, g, hf, dryRun, func(_ *session, r *engine.Run) error {
				ch, err := phases.DrainChange(cmdContext(cmd), r, args[0], o)
				if err != nil {
					return err
				}
				return engine.ApplyOrPlan(cmdContext(cmd), r, nil, ch)
			})
		},
	}
	hf.bind(c)
	c.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up (and name what blocks) after this long")
	c.Flags().BoolVar(&o.DisableEviction, "disable-eviction", false, "delete pods instead of evicting them: bypasses PodDisruptionBudgets")
	c.Flags().BoolVar(&o.Force, "force", false, "also delete pods that no controller manages (they are not recreated)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be evicted; change nothing")
	return c
}

func uncordonCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun bool
	c := &cobra.Command{
		Use:   "uncordon NODE -f hosts.yaml",
		Short: "Let the scheduler place pods on a node again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withHostsRun(cmd, g, hf, dryRun, func(_ *session, r *engine.Run) error {
				return phases.Uncordon(cmdContext(cmd), r, args[0])
			})
		},
	}
	hf.bind(c)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change; change nothing")
	return c
}
