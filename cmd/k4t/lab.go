package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/lab"
)

func init() {
	register(newLabCmd)
}

func newLabCmd(g *globalFlags) *cobra.Command {
	var dir string
	newLab := func() *lab.Lab {
		l := lab.New(dir)
		level := slog.LevelInfo
		if g.Verbose() {
			level = slog.LevelDebug
		}
		l.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		return l
	}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run N real hosts on this machine (systemd-nspawn) to try k4t on",
		Long: `The lab starts hosts as systemd-nspawn containers on this machine: each
boots systemd, has its own overlay root, ssh host keys and machine-id, an
address on the bridge k4tlab0 (10.77.0.1/24, hosts from 10.77.0.11 in the
order given) and sshd accepting root by the lab key and by a random password.
It needs root and: ` + lab.AptInstall + `

The base rootfs is built once with debootstrap (1-2 minutes) and cached in
` + lab.DefaultCacheDir + `; the mirror comes from K4T_LAB_MIRROR or this
machine's apt sources. State lives in the work dir (--dir), so 'down' and
'status' work from any shell, also after a killed 'up'.`,
		Example: `  k4t lab up --hosts slb1,slb2,master1,master2,master3,worker1,worker2
  k4t apply -f /var/lib/k4t-lab/hosts.yaml
  k4t lab ssh master1 crictl ps
  k4t lab kill master1 && k4t lab start master1
  k4t lab down`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", lab.DefaultDir, "lab work dir (state, keys, per-host layers, logs)")

	var hosts []string
	var inventory string
	up := &cobra.Command{
		Use:   "up --hosts NAME,...",
		Short: "Start the lab's hosts (cleaning any earlier lab first) and write an inventory",
		Long: `Start one host per name, in order from 10.77.0.11, and wait until sshd
answers on every one. Whatever an earlier lab left (also a killed one) is
removed first. Roles in the written inventory come from the names: slbN,
masterN, workerN, etcdN; other names get no inventory.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if len(hosts) == 0 {
				return usagef("--hosts is required, e.g. --hosts slb1,slb2,master1,master2,master3,worker1,worker2")
			}
			if _, err := lab.AllocateHosts(lab.New("").Subnet, hosts); err != nil {
				return usageError{err}
			}
			l := newLab()
			start := time.Now()
			if err := l.Up(c.Context(), hosts); err != nil {
				return err
			}
			took := time.Since(start)
			out := c.OutOrStdout()
			path := inventory
			if path == "" {
				path = l.InventoryPath()
			}
			if err := l.WriteInventory(path, nil); err != nil {
				if inventory != "" {
					return err
				}
				fmt.Fprintf(out, "no inventory written: %v\n", err)
				path = ""
			}
			if kh, err := trustLabKeys(g.StateRoot(), l); err != nil {
				fmt.Fprintf(out, "host keys not recorded for k4t: %v\n", err)
			} else {
				fmt.Fprintf(out, "the lab's host keys are trusted by k4t's cluster \"lab\": %s\n", kh)
			}
			fmt.Fprintf(out, "lab up: %d hosts in %s\n", len(hosts), took.Round(100*time.Millisecond))
			if err := printStatus(c, l, g); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nssh key:     %s\nknown_hosts: %s\nroot password file: %s\n", l.KeyFile(), l.KnownHostsFile(), l.Dir+"/root-password")
			if path != "" {
				fmt.Fprintf(out, "inventory:   %s\n", path)
			}
			return nil
		},
	}
	up.Flags().StringSliceVar(&hosts, "hosts", nil, "host names, comma separated (roles come from the names: slbN, masterN, workerN, etcdN)")
	up.Flags().StringVar(&inventory, "inventory", "", "also write the inventory here (default: hosts.yaml in the lab work dir)")

	down := &cobra.Command{
		Use:   "down",
		Short: "Stop every host and remove all the lab left: mounts, cgroups, bridge, sysctls, work dir",
		Long: `Stop every host cleanly (killed after 10 s), then remove mounts, cgroups,
veths, the bridge and the work dir's contents, and restore the machine's
sysctls. The base cache stays. Safe to run anytime, also after a killed 'up'.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			start := time.Now()
			if err := newLab().Down(c.Context()); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "lab down in %s\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the lab's hosts: address, running, pids, memory",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return printStatus(c, newLab(), g)
		},
	}

	hostCmd := func(use, short string, f func(*lab.Lab, *cobra.Command, string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " HOST",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return f(newLab(), c, args[0])
			},
		}
	}
	stop := hostCmd("stop", "Power a host off cleanly (its disk, address and keys stay)", func(l *lab.Lab, c *cobra.Command, h string) error {
		return l.Stop(c.Context(), h)
	})
	kill := hostCmd("kill", "Crash a host: kill -9 its init (start brings it back)", func(l *lab.Lab, c *cobra.Command, h string) error {
		return l.Kill(c.Context(), h)
	})
	startCmd := hostCmd("start", "Start a stopped or crashed host and wait for its sshd", func(l *lab.Lab, c *cobra.Command, h string) error {
		return l.Start(c.Context(), h)
	})

	sshCmd := &cobra.Command{
		Use:   "ssh HOST [COMMAND...]",
		Short: "Log in to a host as root with the lab key (or run COMMAND there)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			l := newLab()
			hs, err := l.Hosts()
			if err != nil {
				return err
			}
			addr := ""
			for _, h := range hs {
				if h.Name == args[0] {
					addr = h.Address
				}
			}
			if addr == "" {
				return usagef("no lab host %q", args[0])
			}
			sargs := []string{"-i", l.KeyFile(), "-o", "UserKnownHostsFile=" + l.KnownHostsFile(), "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"}
			if len(args) == 1 {
				sargs = append(sargs, "-t")
			}
			sargs = append(sargs, "root@"+addr)
			if len(args) > 1 {
				sargs = append(sargs, "--", strings.Join(args[1:], " "))
			}
			x := exec.CommandContext(c.Context(), "ssh", sargs...)
			x.Stdin, x.Stdout, x.Stderr = os.Stdin, c.OutOrStdout(), c.ErrOrStderr()
			if err := x.Run(); err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					return fmt.Errorf("ssh %s: exit status %d", args[0], ee.ExitCode())
				}
				return err
			}
			return nil
		},
	}
	sshCmd.Flags().SetInterspersed(false)

	knownHosts := &cobra.Command{
		Use:   "known-hosts",
		Short: "Print the hosts' ssh keys as known_hosts lines (to pre-seed a known_hosts file)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := newLab().KnownHosts()
			if err != nil {
				return err
			}
			fmt.Fprint(c.OutOrStdout(), s)
			return nil
		},
	}

	base := &cobra.Command{
		Use:   "base",
		Short: "Build the cached base rootfs now (up does it when needed) and print its path",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			start := time.Now()
			p, err := newLab().EnsureBase(c.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s (%s)\n", p, time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}

	cmd.AddCommand(up, down, status, stop, kill, startCmd, sshCmd, knownHosts, base)
	return cmd
}

func printStatus(c *cobra.Command, l *lab.Lab, g *globalFlags) error {
	st, err := l.Status()
	if err != nil {
		return err
	}
	out := c.OutOrStdout()
	if g.Output() == "json" {
		enc := json.NewEncoder(out)
		for _, s := range st {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tSTATE\tNSPAWN PID\tINIT PID\tMEMORY\tRSS")
	for _, s := range st {
		state, np, ip, mem, rss := "stopped", "-", "-", "-", "-"
		if s.Running {
			state, np, ip = "running", fmt.Sprint(s.NspawnPID), fmt.Sprint(s.InitPID)
			mem, rss = fmt.Sprintf("%d MiB", s.MemoryBytes>>20), fmt.Sprintf("%d MiB", s.RSSBytes>>20)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Address, state, np, ip, mem, rss)
	}
	return tw.Flush()
}

// trustLabKeys records the keys the lab just generated in the known_hosts of
// k4t's "lab" cluster, replacing the entries of hosts an earlier lab had at
// the same addresses: the lab made these keys, so it can vouch for them, and
// a re-created lab does not look like a host key change.
func trustLabKeys(stateRoot string, l *lab.Lab) (string, error) {
	keys, err := l.KnownHosts()
	if err != nil {
		return "", err
	}
	hs, err := l.Hosts()
	if err != nil {
		return "", err
	}
	ours := map[string]bool{}
	for _, h := range hs {
		ours[h.Address], ours[h.Name] = true, true
	}
	dir := filepath.Join(stateRoot, "clusters", "lab")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "known_hosts")
	var kept []string
	if b, err := os.ReadFile(path); err == nil {
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			hostsField, _, _ := strings.Cut(line, " ")
			drop := false
			for _, h := range strings.Split(hostsField, ",") {
				drop = drop || ours[h]
			}
			if line != "" && !drop {
				kept = append(kept, line)
			}
		}
	}
	content := strings.Join(kept, "\n")
	if content != "" {
		content += "\n"
	}
	return path, os.WriteFile(path, []byte(content+keys), 0o600)
}
