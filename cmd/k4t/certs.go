package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/action"
	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
	"k4t.io/k4t/pkg/schedule"
)

// durationFlag is a pflag.Value reading k4t's durations ("30d", "2h").
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return v1alpha1.Duration{Duration: *f.d}.String()
}
func (f durationFlag) Set(s string) error {
	d, err := v1alpha1.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d.Duration
	return nil
}
func (durationFlag) Type() string { return "duration" }

// withHostsRun opens the session of a command that works on an existing
// cluster (certs, drain, uncordon) and a Run for it — a plan when dryRun;
// no artifacts: these commands install nothing — runs fn, and closes both.
func withHostsRun(cmd *cobra.Command, g *globalFlags, hf hostsFlags, dryRun bool, fn func(*session, *engine.Run) error) error {
	return withRun(cmd, g, hf, dryRun, false, fn)
}

// withRun is withHostsRun with the artifact store of the inventory's
// versions, for commands that install what they push.
func withRun(cmd *cobra.Command, g *globalFlags, hf hostsFlags, dryRun, withArtifacts bool, fn func(*session, *engine.Run) error) error {
	return openRun(cmd, g, hf, dryRun, withArtifacts, true, fn)
}

// withListedRun is withRun on every host hosts.yaml lists, deleted ones
// too: for delete node (a delete that stopped after recording its node
// finds it) and reset (a host deleted with --force was not reset).
func withListedRun(cmd *cobra.Command, g *globalFlags, hf hostsFlags, dryRun, withArtifacts bool, fn func(*session, *engine.Run) error) error {
	return openRun(cmd, g, hf, dryRun, withArtifacts, false, fn)
}

func openRun(cmd *cobra.Command, g *globalFlags, hf hostsFlags, dryRun, withArtifacts, leaveOut bool, fn func(*session, *engine.Run) error) error {
	s, err := openSession(cmd, g, hf, false)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.run(dryRun, withArtifacts)
	if err != nil {
		return err
	}
	defer r.Journal.Close()
	if leaveOut {
		if err := leaveOutRemoved(s, r); err != nil {
			return err
		}
	}
	return fn(s, r)
}

// leaveOutRemoved takes the hosts `k4t delete node` removed out of r's
// cluster: hosts.yaml may still list them, but they are no part of it.
// (plan and apply keep them: apply adds such a host back.)
func leaveOutRemoved(s *session, r *engine.Run) error {
	removed, err := s.state.Removed()
	if err != nil {
		return err
	}
	for _, h := range slices.Sorted(maps.Keys(removed)) {
		if r.Cluster.Host(h) != nil {
			r.Cluster = r.Cluster.Without(h)
			s.events.Warnf("inventory", h, "left out: %s was deleted from the cluster (k4t delete node, %s); remove it from hosts.yaml", h, removed[h].Format(time.RFC3339))
		}
	}
	return nil
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func init() {
	register(func(g *globalFlags) *cobra.Command {
		c := &cobra.Command{Use: "certs", Short: "Check, renew and schedule the renewal of the cluster's certificates"}
		c.AddCommand(checkCmd(g), renewCmd(g), renewCACmd(g), scheduleCmd(g))
		return c
	})
}

func checkCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	caWarn := 365 * 24 * time.Hour
	check := &cobra.Command{
		Use:   "check-expiration -f hosts.yaml",
		Short: "List every certificate on every host and on the bastion, with its CA, NotAfter and time left",
		Long: `Reads, over SSH, every certificate k4t expects on each host: the CAs, kubeadm's
certificates and the client certificates embedded in admin.conf, super-admin.conf,
controller-manager.conf, scheduler.conf and kubelet.conf on masters, k4t's etcd
certificates on etcd members, kubelet's serving and client certificates on every node;
and on the bastion the state dir's pki/ and admin.conf. Private keys never leave a host.
Missing or unreadable files are rows with an error, never skipped. Exits 1 when any row
has an error or is expired; a CA within --ca-warn of its end is a warning.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withHostsRun(cmd, g, hf, false, func(_ *session, r *engine.Run) error {
				return reportExpiry(cmd, g.Output(), phases.CheckAllCerts(cmdContext(cmd), r), caWarn)
			})
		},
	}
	hf.bind(check)
	check.Flags().Var(durationFlag{&caWarn}, "ca-warn", "warn when a CA expires within this (e.g. 365d)")
	return check
}

// reportExpiry prints rows and turns problems into the exit status.
func reportExpiry(cmd *cobra.Command, output string, rows []certs.Expiry, caWarn time.Duration) error {
	warn := map[int]string{}
	for i, r := range rows {
		// k4t's CAs (ca.crt, front-proxy-ca.crt, etcd/ca.crt); not kubelet's self-signed
		// serving CA (renewed with kubelet-serving) nor copies embedded in kubeconfigs.
		if r.IsCA && r.Err == "" && r.Left > 0 && r.Left < caWarn && strings.HasSuffix(r.Name, "ca.crt") {
			warn[i] = fmt.Sprintf("CA expires in %s — extend it with `k4t certs renew-ca`", humanDuration(r.Left))
		}
	}
	if err := printExpiry(cmd, output, rows, warn); err != nil {
		return err
	}
	if output != "json" {
		for i := range rows {
			if w := warn[i]; w != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: %s: %s: %s\n", rows[i].Host, rows[i].Name, w)
			}
		}
	}
	var bad []string
	errored := false
	for _, r := range rows {
		if p := phases.ExpiryProblem(r); p != "" {
			bad = append(bad, fmt.Sprintf("%s: %s: %s", r.Host, r.Name, p))
			errored = errored || r.Err != ""
		}
	}
	if len(bad) == 0 {
		return nil
	}
	hint := "renew with `k4t certs renew --all -f hosts.yaml`"
	if errored {
		hint = "fix the rows marked ERROR (`k4t apply` restores missing files), then renew what expired"
	}
	return fmt.Errorf("%d problem(s), first: %s\n%s", len(bad), bad[0], hint)
}

func printExpiry(cmd *cobra.Command, output string, rows []certs.Expiry, warn map[int]string) error {
	if output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		for i, r := range rows {
			if err := enc.Encode(struct {
				Host     string    `json:"host"`
				Name     string    `json:"certificate"`
				CA       string    `json:"ca,omitempty"`
				IsCA     bool      `json:"isCA"`
				NotAfter time.Time `json:"notAfter"`
				LeftS    float64   `json:"left_s"`
				Err      string    `json:"error,omitempty"`
				Warning  string    `json:"warning,omitempty"`
			}{r.Host, r.Name, r.CA, r.IsCA, r.NotAfter, r.Left.Seconds(), r.Err, warn[i]}); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tCERTIFICATE\tCA\tEXPIRES\tLEFT\t")
	for _, r := range rows {
		ca := r.CA
		if r.IsCA {
			ca = "(CA)"
		}
		if r.Err != "" {
			fmt.Fprintf(w, "%s\t%s\t%s\tERROR: %s\t\t\n", r.Host, r.Name, ca, r.Err)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t\n", r.Host, r.Name, ca, r.NotAfter.UTC().Format(time.RFC3339), humanDuration(r.Left))
	}
	return w.Flush()
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "EXPIRED"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	default:
		return d.Round(time.Minute).String()
	}
}

func renewCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var all, dryRun bool
	var within, validity time.Duration
	c := &cobra.Command{
		Use:   "renew [--all | NAME…] -f hosts.yaml",
		Short: "Renew certificates one master at a time, without downtime behind the VIP",
		Long: `Renews, one master at a time: the master leaves HAProxy on every slb host (runtime
socket), kubeadm renews its certificates, k4t's etcd certificates are renewed in the state
dir (keys kept) and pushed, exactly the static pods and units that use a renewed
certificate restart, kubelet's certificates are renewed; then k4t waits for that master's
/readyz and for etcd health and puts it back. Workers' kubelet certificates follow. Then
the bastion's kubeconfig is refreshed. The first failure stops the roll; a master whose
/readyz does not answer then stays out of HAProxy until the next renew. --dry-run prints
every host's steps in order and changes nothing.

NAMEs: ` + strings.Join(phases.AllCertNames(), ", ") + `.
--if-expiring-within D checks first and renews everything only when a certificate
expires within D (what the scheduled job runs).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usagef("pass either --all or certificate names, not both")
			case !all && len(args) == 0 && within == 0:
				return usagef("name the certificates to renew (%s) or pass --all", strings.Join(phases.AllCertNames(), ", "))
			}
			rn, err := phases.NewCertsRenewal(phases.RenewOptions{Names: args, IfExpiringWithin: within, Validity: validity})
			if err != nil {
				return usageError{err}
			}
			return withHostsRun(cmd, g, hf, dryRun, func(s *session, r *engine.Run) error {
				start := time.Now()
				if _, err := (&engine.Engine{Run: r, Phases: action.CertsRenew(rn)}).Execute(cmdContext(cmd)); err != nil {
					return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
				}
				if res := rn.Result; !res.Skipped && !dryRun {
					s.events.Infof("certs", "", "renewed certificates on %d host(s) in %s: %s", len(res.Renewed), time.Since(start).Round(time.Second), strings.Join(res.Renewed, ", "))
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().BoolVar(&all, "all", false, "renew every certificate")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show each host's steps in order; change nothing")
	c.Flags().Var(durationFlag{&within}, "if-expiring-within", "check first; renew (everything named, default all) only if a certificate expires within this (e.g. 30d)")
	c.Flags().Var(durationFlag{&validity}, "validity", "validity of k4t's etcd certificates; default spec.certificates.validity (kubeadm's and kubelet's keep theirs)")
	return c
}

func renewCACmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var noRoll bool
	validity := 87600 * time.Hour
	c := &cobra.Command{
		Use:   "renew-ca [NAME…] -f hosts.yaml",
		Short: "Extend CAs' validity keeping their keys, push them, and restart their users one master at a time",
		Long: `Re-signs each CA (` + strings.Join(phases.CANames(), ", ") + `; default all) with its own key and
subject, so every certificate it signed stays valid and none needs re-issuing; writes the
new CA certificates to every host that holds them (and the cluster CA into kubelet.conf),
then runs the renewal roll so every component reloads them, one master at a time.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withHostsRun(cmd, g, hf, false, func(s *session, r *engine.Run) error {
				ctx := cmdContext(cmd)
				if err := phases.RenewCAs(ctx, r, args, validity); err != nil {
					return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
				}
				if noRoll {
					s.events.Warnf("certs", "", "CA certificates pushed; components load them at their next restart (`k4t certs renew --all`)")
					return nil
				}
				rn, err := phases.NewCertsRenewal(phases.RenewOptions{})
				if err != nil {
					return err
				}
				if _, err := (&engine.Engine{Run: r, Phases: action.CertsRenew(rn)}).Execute(ctx); err != nil {
					return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
				}
				return nil
			})
		},
	}
	hf.bind(c)
	c.Flags().Var(durationFlag{&validity}, "validity", "new validity of each CA from now")
	c.Flags().BoolVar(&noRoll, "no-restart", false, "only renew and push the CA certificates; restart nothing")
	return c
}

func scheduleCmd(g *globalFlags) *cobra.Command {
	var hf hostsFlags
	var remove, status bool
	var fallback time.Duration
	every := 24 * time.Hour
	before := 30 * 24 * time.Hour
	c := &cobra.Command{
		Use:   "schedule -f hosts.yaml [--every 24h --renew-before 30d | --remove | --status]",
		Short: "Run check → renew-if-needed from the bastion on a schedule (systemd timer, or cron)",
		Long: `Installs on this machine (the bastion) a job that runs
'k4t certs renew --if-expiring-within RENEW-BEFORE' every EVERY and soon after each boot:
a systemd timer when systemd is PID 1, otherwise an /etc/cron.d entry. The job logs to
the state dir (logs/certs-renew.log) and writes its last result there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if remove && status {
				return usagef("pass --remove or --status, not both")
			}
			cl, st, err := inventoryAndState(cmd, g, hf)
			if err != nil {
				return err
			}
			sch := &schedule.Scheduler{}
			ctx := cmdContext(cmd)
			out := cmd.OutOrStdout()
			// withRun connects to the masters for the node-side fallback.
			withRun := func(fn func(r *engine.Run) error) error {
				return withHostsRun(cmd, g, hf, false, func(_ *session, r *engine.Run) error { return fn(r) })
			}
			switch {
			case remove:
				if phases.NodeFallbackRecorded(st) {
					if err := withRun(func(r *engine.Run) error { return phases.RemoveNodeFallback(ctx, r) }); err != nil {
						return err
					}
					if err := phases.RecordNodeFallback(st, 0); err != nil {
						return err
					}
					fmt.Fprintln(out, "removed the node-side fallback timer from every master")
				}
				removed, err := phases.RemoveCertsSchedule(ctx, sch, st, cl.Metadata.Name)
				return printRemoved(out, removed, err, "no schedule was installed for cluster "+cl.Metadata.Name)
			case status:
				stt, err := phases.CertsScheduleStatus(ctx, sch, st, cl.Metadata.Name, time.Now())
				if err != nil {
					return err
				}
				return printScheduleStatus(cmd, g.Output(), stt, certsJobWords)
			}
			if every < time.Minute {
				return usagef("--every %s is shorter than a minute", every)
			}
			bin, inv, root, err := jobPaths(g, hf)
			if err != nil {
				return err
			}
			if fallback > 0 {
				if fallback >= before {
					return usagef("--node-fallback %s must be shorter than --renew-before %s, so the bastion's roll normally comes first", fallback, before)
				}
				if err := withRun(func(r *engine.Run) error { return phases.InstallNodeFallback(ctx, r, fallback) }); err != nil {
					return err
				}
				if err := phases.RecordNodeFallback(st, fallback); err != nil {
					return err
				}
				fmt.Fprintf(out, "installed the node-side fallback on every master: a daily timer renews kubeadm's certificates there when they expire within %s\n", v1alpha1.Duration{Duration: fallback})
			}
			in := phases.CertsJobInput(st, cl.Metadata.Name, bin, root, inv, every, before)
			info, warning, err := phases.InstallCertsSchedule(ctx, sch, st, in)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "installed %s: %s\n", info.Kind, strings.Join(info.Files, ", "))
			fmt.Fprintf(out, "every %s it runs %s (k4t certs renew --if-expiring-within %s); log: %s\n", info.Every, in.Job, info.RenewBefore, in.Log)
			if warning != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: "+warning)
			}
			return nil
		},
	}
	hf.bind(c)
	c.Flags().Var(durationFlag{&every}, "every", "how often the job runs (e.g. 24h, 12h, 1d)")
	c.Flags().Var(durationFlag{&before}, "renew-before", "renew when a certificate expires within this (e.g. 30d)")
	c.Flags().BoolVar(&remove, "remove", false, "take the schedule away")
	c.Flags().BoolVar(&status, "status", false, "show the schedule, its next run and the last result")
	c.Flags().Var(durationFlag{&fallback}, "node-fallback", "also install on every master a daily timer (each master at its own hour) that renews kubeadm's certificates there when they expire within this (e.g. 14d) — for when the bastion stays off")
	return c
}

// jobPaths are the absolute paths a bastion job runs with: this k4t
// binary, the state root and the inventory.
func jobPaths(g *globalFlags, hf hostsFlags) (bin, inv, root string, err error) {
	bin, err = os.Executable()
	if err == nil {
		bin, err = filepath.EvalSymlinks(bin)
	}
	if err != nil {
		return "", "", "", fmt.Errorf("finding the k4t binary: %w", err)
	}
	if inv, err = filepath.Abs(hf.file); err != nil {
		return "", "", "", err
	}
	if root, err = filepath.Abs(g.StateRoot()); err != nil {
		return "", "", "", err
	}
	return bin, inv, root, nil
}

// printRemoved lists what a --remove took away, or says none was there.
func printRemoved(out io.Writer, removed []string, err error, none string) error {
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintln(out, none)
	}
	for _, p := range removed {
		fmt.Fprintln(out, "removed "+p)
	}
	return nil
}

// jobWords are what a bastion job's --status says of it.
type jobWords struct{ install, failed string }

var certsJobWords = jobWords{
	install: "k4t certs schedule -f hosts.yaml",
	failed:  "the last scheduled renewal failed — read the log above, fix, and run `k4t certs renew --all -f hosts.yaml`",
}

func printScheduleStatus(cmd *cobra.Command, output string, s *phases.ScheduleStatus, words jobWords) error {
	out := cmd.OutOrStdout()
	if output == "json" {
		return json.NewEncoder(out).Encode(s)
	}
	if !s.Installed {
		fmt.Fprintf(out, "schedule: not installed (install it with `%s`)\n", words.install)
	} else {
		fmt.Fprintf(out, "schedule: %s (%s), every %s", s.Info.Kind, strings.Join(s.Info.Files, ", "), s.Info.Every)
		if s.Info.RenewBefore != "" {
			fmt.Fprintf(out, ", renews when a certificate expires within %s", s.Info.RenewBefore)
		}
		fmt.Fprintln(out)
		if s.Info.Schedule != "" {
			fmt.Fprintf(out, "cron:     %s\n", s.Info.Schedule)
		}
		next := s.NextRun
		if next == "" {
			next = "unknown"
		}
		fmt.Fprintf(out, "next run: %s\n", next)
	}
	if s.Info != nil && s.Info.NodeFallback != "" {
		fmt.Fprintf(out, "masters:  node-side fallback timer renews kubeadm's certificates within %s\n", s.Info.NodeFallback)
	}
	if s.Last == nil {
		fmt.Fprintln(out, "last run: never")
	} else {
		res := "succeeded"
		if s.Last.ExitCode != 0 {
			res = fmt.Sprintf("FAILED (exit %d)", s.Last.ExitCode)
		}
		fmt.Fprintf(out, "last run: %s → %s, %s\n", s.Last.Start, s.Last.End, res)
	}
	fmt.Fprintf(out, "log:      %s\n", s.Log)
	for _, l := range s.LogTail {
		fmt.Fprintln(out, "  | "+l)
	}
	if s.Warning != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: "+s.Warning)
	}
	if s.Last != nil && s.Last.ExitCode != 0 {
		return errors.New(words.failed)
	}
	return nil
}
