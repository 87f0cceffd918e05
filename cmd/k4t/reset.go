package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/action"
	"k4t.io/k4t/pkg/engine"
)

func init() {
	register(resetCmd)
}

func resetCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var dryRun, yes bool
	c := &cobra.Command{
		Use:   "reset -f hosts.yaml [--yes | --dry-run]",
		Short: "Tear the whole cluster down: workers, masters, etcd (its data too), then the load balancers",
		Long: `Removes what k4t set up, tier by tier: on the workers, then the masters, kubeadm reset
and kubelet, containerd, their data and the pod network (CNI config, routes, iptables rules);
etcd on every member with its data dir; keepalived (which releases the VIP) and HAProxy on
the slb hosts; finally k4t's sysctls, /etc/hosts block, units and binaries on every host.
The state dir is not deleted: it moves to a timestamped sibling (CAs, journal, etcd
snapshots), and a fresh one keeps known_hosts, so 'k4t create cluster' starts anew on the
same hosts. Take 'k4t etcd backup' first if the data may be wanted again.

Asks for confirmation unless --yes. A reset that stopped half-way is finished by running
it again: hosts with nothing left are not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every host listed: one deleted with --force was not reset.
			return withListedRun(cmd, g, hf, dryRun, false, func(s *session, r *engine.Run) error {
				if store, err := s.artifacts(); err == nil {
					r.Options.Artifacts = store // where the binaries went, to remove them
				} else {
					s.events.Warnf("reset", "", "no artifact manifest for this cluster's versions (%v): binaries k4t installed stay", err)
				}
				if !dryRun && !yes {
					if err := confirm(cmd, fmt.Sprintf("This removes cluster %q from %d host(s), etcd's data included.", s.cluster.Metadata.Name, len(engine.AllHosts(r)))); err != nil {
						return err
					}
				}
				if _, err := (&engine.Engine{Run: r, Phases: action.Reset()}).Execute(cmdContext(cmd)); err != nil {
					return fmt.Errorf("%w\n(run `k4t reset` again to finish; full log: %s)", err, s.logFile.Name())
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be removed on each host; change nothing")
	return c
}

// confirm asks on stdin; anything but "yes" stops the command.
func confirm(cmd *cobra.Command, what string) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s Type yes to go on: ", what)
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return usagef("not confirmed: nothing was changed (pass --yes to skip the question)")
	}
	return nil
}
