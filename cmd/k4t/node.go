package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/action"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

func init() {
	register(drainCmd)
	register(uncordonCmd)
	register(deleteCmd)
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

func deleteCmd(g *globalFlags) *cobra.Command {
	c := &cobra.Command{Use: "delete", Short: "Take a node out of the cluster"}
	c.AddCommand(deleteNodeCmd(g))
	return c
}

func deleteNodeCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun, yes bool
	d := &phases.NodeDeletion{}
	c := &cobra.Command{
		Use:   "node NODE -f hosts.yaml",
		Short: "Take a worker or master out of the cluster and reset its host",
		Long: `Takes NODE out of the cluster: a master first leaves HAProxy; the node is cordoned and
drained (PodDisruptionBudgets respected); its Node object goes; an etcd member is removed
with etcdctl, only when every member left is healthy, or the delete is refused with the
reason. The state dir records the host as deleted, and the rest of the run works without
it: both load balancers drop its backend (one transaction), the other masters'
kube-apiserver get the etcd members left (one master at a time, out of HAProxy until
/readyz answers), kubeadm's configuration follows. Last, the host is reset as
'k4t reset' resets a host. Then remove it from hosts.yaml: until then plan and apply
warn, and apply would add it back.

The first master (it ran kubeadm init and holds k4t's admin credentials) and the only
master are refused. A host that does not answer is refused unless --force: its Node
and etcd member go, its reset is skipped. A delete that stopped half-way is finished
by running it again. Asks for confirmation unless --yes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d.Node = args[0]
			// DeleteCheck leaves out the hosts deleted before; with the
			// artifacts: kubeadm's configuration names the images.
			return withListedRun(cmd, g, hf, dryRun, true, func(s *session, r *engine.Run) error {
				if !dryRun && !yes {
					if err := confirm(cmd, fmt.Sprintf("This takes %s out of cluster %q and resets its host.", d.Node, s.cluster.Metadata.Name)); err != nil {
						return err
					}
				}
				if _, err := (&engine.Engine{Run: r, Phases: action.DeleteNode(d)}).Execute(cmdContext(cmd)); err != nil {
					return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().BoolVar(&d.Force, "force", false, "remove a node whose host does not answer (its reset is skipped)")
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show each step; change nothing")
	c.Flags().DurationVar(&d.Drain.Timeout, "drain-timeout", 5*time.Minute, "give up draining (and name what blocks) after this long")
	c.Flags().BoolVar(&d.Drain.DisableEviction, "disable-eviction", false, "delete pods instead of evicting them: bypasses PodDisruptionBudgets")
	return c
}
