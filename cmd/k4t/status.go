package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
	"k4t.io/k4t/pkg/status"
)

func init() { register(statusCmd) }

// errDegraded makes `k4t status` exit 1 after printing its report.
type errDegraded struct{ verdict string }

func (e errDegraded) Error() string { return e.verdict }

func statusCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var watch time.Duration
	th := status.DefaultThresholds
	c := &cobra.Command{
		Use:   "status -f hosts.yaml [-o text|json|prometheus] [--watch 5s]",
		Short: "One look at the cluster's health: every host, etcd, the API, the VIP",
		Long: `Asks every host at once, over one SSH connection each and one read-only command:
uptime, load, CPU busy, memory available, disk use (/, etcd's data dir,
/var/lib/containerd, /var/lib/kubelet), its clock against the bastion's, the state of
each unit k4t installed, the soonest certificate expiry; on slb hosts whether it holds
the VIP and HAProxy's view of each master; on etcd members their health, leadership, DB
size, alarms and newest scheduled snapshot; on masters kube-apiserver's /readyz. Then
the API: each node's Ready and kubelet version, and which master holds the scheduler's
and the controller-manager's leases.

The first line is the verdict: healthy, or degraded with every problem found. -o json
gives the same data; -o prometheus the exposition format, for node_exporter's textfile
directory or any scraper. Exit code 0 healthy, 1 degraded, 2 usage. It changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if th.DiskPercent < 1 || th.DiskPercent > 100 || th.MemAvailPercent < 0 || th.MemAvailPercent > 100 {
				return usagef("--disk-threshold is 1-100 and --memory-threshold 0-100 (percent)")
			}
			return withHostsRun(cmd, g, hf, true, func(_ *session, r *engine.Run) error {
				for {
					rep := phases.ClusterStatus(cmdContext(cmd), r, th)
					w := cmd.OutOrStdout()
					if watch > 0 && g.Output() == "text" {
						fmt.Fprint(w, "\033[H\033[2J")
					}
					var err error
					switch g.Output() {
					case "json":
						err = rep.JSON(w)
					case "prometheus":
						err = rep.Prometheus(w)
					default:
						err = rep.Text(w)
					}
					if err != nil {
						return err
					}
					if watch <= 0 {
						if !rep.Healthy {
							return errDegraded{rep.Verdict}
						}
						return nil
					}
					select {
					case <-cmdContext(cmd).Done():
						return nil
					case <-time.After(watch):
					}
				}
			})
		},
	}
	hf.bind(c)
	c.Flags().DurationVar(&watch, "watch", 0, "redraw the view this often (until Ctrl-C)")
	c.Flags().IntVar(&th.DiskPercent, "disk-threshold", th.DiskPercent, "a filesystem this full (percent) is a problem")
	c.Flags().IntVar(&th.MemAvailPercent, "memory-threshold", th.MemAvailPercent, "less memory available than this (percent) is a problem")
	c.Flags().Var(durationFlag{&th.CertWithin}, "cert-threshold", "a certificate expiring within this is a problem (e.g. 30d)")
	return c
}
