package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"k4t.io/k4t/pkg/action"
	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/transport"
)

// hostsFlags are the flags of every command that reaches the hosts: the
// inventory and whether to trust hosts seen for the first time.
type hostsFlags struct {
	file      string
	acceptNew bool
	forceOS   bool
}

// bind adds -f (required) and --accept-new-hosts.
func (f *hostsFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "inventory (hosts.yaml)")
	_ = cmd.MarkFlagRequired("file")
	cmd.Flags().BoolVar(&f.acceptNew, "accept-new-hosts", false, "trust hosts seen for the first time and record their keys (a changed key always fails)")
	cmd.Flags().BoolVar(&f.forceOS, "force-os", false, "go on, with a warning, on a distribution k4t does not support (preflight refuses it otherwise)")
}

// runFlags are the flags of create cluster, plan and apply.
type runFlags struct {
	hostsFlags
	only, skip []string
	diff       bool
	merge      bool
}

func (f *runFlags) bind(cmd *cobra.Command) {
	f.hostsFlags.bind(cmd)
	cmd.Flags().StringSliceVar(&f.only, "only", nil, "run only these phases (comma-separated)")
	cmd.Flags().StringSliceVar(&f.skip, "skip", nil, "skip these phases (comma-separated)")
	cmd.Flags().BoolVar(&f.merge, "merge-kubeconfig", false, "merge the admin kubeconfig into ~/.kube/config (or $KUBECONFIG)")
}

// pipelineCmd is a command that runs the phases: create cluster, apply
// (dryRun false) or plan (dryRun true).
func pipelineCmd(g *globalFlags, use, short, long string, dryRun bool) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use: use, Short: short, Long: long, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPipeline(cmd, g, &f, dryRun) },
	}
	f.bind(c)
	if dryRun {
		c.Flags().BoolVar(&f.diff, "diff", true, "show unified diffs of files")
	}
	return c
}

func init() {
	register(func(g *globalFlags) *cobra.Command {
		create := &cobra.Command{Use: "create", Short: "Create a cluster, or print a sample inventory"}
		cc := pipelineCmd(g, "cluster -f hosts.yaml", "Create (or converge) the cluster described by an inventory",
			"Runs every phase ("+phaseNames()+") against the hosts. Safe to re-run: it converges after any failure.", false)
		var out string
		cfg := &cobra.Command{
			Use:   "config",
			Short: "Print a commented sample inventory (HA: 2 slb, 3 masters, 3 workers)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if out == "" {
					_, err := cmd.OutOrStdout().Write(v1alpha1.SampleInventory)
					return err
				}
				return os.WriteFile(out, v1alpha1.SampleInventory, 0o644)
			},
		}
		cfg.Flags().StringVar(&out, "out", "", "write to this file instead of stdout")
		create.AddCommand(cc, cfg)
		return create
	})
	register(func(g *globalFlags) *cobra.Command {
		return pipelineCmd(g, "plan -f hosts.yaml", "Show, per host, the files, units and commands an apply would change", "", true)
	})
	register(func(g *globalFlags) *cobra.Command {
		return pipelineCmd(g, "apply -f hosts.yaml", "Apply the inventory: make every host match it (idempotent)", "", false)
	})
}

func phaseNames() string {
	s := ""
	for i, p := range action.Create() {
		if i > 0 {
			s += ", "
		}
		s += p.Name()
	}
	return s
}

// loadInventory loads and validates, printing warnings; invalid input is a
// usage error (exit 2).
func loadInventory(path string, stderr io.Writer) (*v1alpha1.Cluster, error) {
	c, problems, err := v1alpha1.Load(path)
	for _, p := range problems {
		if p.Severity == v1alpha1.Warning {
			fmt.Fprintf(stderr, "WARNING: %s: %s\n", path, p.String())
		}
	}
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// session is what one command invocation sets up around a cluster.
type session struct {
	command string // "apply", "certs renew": what the run's end names
	cluster *v1alpha1.Cluster
	state   *state.Dir
	events  *events.Emitter
	log     *slog.Logger
	logFile *os.File
	dialer  *transport.Dialer
	conn    *engine.Connector
	runID   string
	// concurrency is --concurrency, for every fan-out of the run.
	concurrency int
	forceOS     bool // --force-os
}

func (s *session) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.dialer != nil {
		s.dialer.Close()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
}

func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// inventoryAndState loads the inventory and opens its cluster's state dir.
func inventoryAndState(cmd *cobra.Command, g *globalFlags, hf hostsFlags) (*v1alpha1.Cluster, *state.Dir, error) {
	c, err := loadInventory(hf.file, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, err
	}
	st, err := state.Open(g.StateRoot(), c.Metadata.Name)
	if err != nil {
		return nil, nil, err
	}
	return c, st, nil
}

// openSession loads the inventory, opens the state dir, the log file, the
// event sinks and the connector.
func openSession(cmd *cobra.Command, g *globalFlags, hf hostsFlags, showDiff bool) (*session, error) {
	c, st, err := inventoryAndState(cmd, g, hf)
	if err != nil {
		return nil, err
	}
	s := &session{cluster: c, state: st, runID: newRunID(), concurrency: g.Concurrency(), forceOS: hf.forceOS,
		command: strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")}
	if raw, err := os.ReadFile(hf.file); err == nil {
		if err := st.WriteFile(st.Inventory(), raw, 0o600); err != nil {
			return nil, fmt.Errorf("copying the inventory to the state dir: %w — check that %s is writable", err, st.Root)
		}
	}
	logPath := g.LogFile()
	if logPath == "" {
		logPath = filepath.Join(st.Logs(), s.runID+".log")
	}
	s.logFile, err = os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	level := slog.LevelInfo
	if g.Verbose() {
		level = slog.LevelDebug
	}
	// The log file always gets debug detail; stderr only with -v.
	handlers := []slog.Handler{slog.NewJSONHandler(s.logFile, &slog.HandlerOptions{Level: slog.LevelDebug})}
	if g.Verbose() && g.Output() == "text" {
		handlers = append(handlers, slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	}
	s.log = slog.New(slog.NewMultiHandler(handlers...))
	slog.SetDefault(s.log)
	var out events.Sink
	if g.Output() == "json" {
		out = events.JSON{W: cmd.OutOrStdout()}
	} else {
		width := 0
		for _, h := range c.Spec.Hosts {
			width = max(width, len(h.Name))
		}
		out = &events.Text{W: cmd.OutOrStdout(), Verbose: g.Verbose(), ShowDiff: showDiff, Width: width}
	}
	s.events = events.NewEmitter(s.runID, out, events.JSON{W: s.logFile})
	keys, err := transport.NewKnownHostsFiles(st.KnownHosts(), hf.acceptNew, userKnownHosts()...)
	if err != nil {
		s.close()
		return nil, err
	}
	s.dialer = transport.NewDialer()
	s.dialer.Log = s.log
	s.conn = engine.NewConnector(c, keys, s.dialer)
	return s, nil
}

func userKnownHosts() []string {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	p := filepath.Join(home, ".ssh", "known_hosts")
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	return []string{p}
}

// run makes the session's Run: a plan when dryRun (no journal), with the
// inventory's artifacts when the command installs anything.
func (s *session) run(dryRun, withArtifacts bool) (*engine.Run, error) {
	r := &engine.Run{
		Cluster: s.cluster, State: s.state, Connect: s.conn.Connect,
		Events: s.events, DryRun: dryRun, Command: s.command,
		Options:  engine.Options{Now: time.Now, Concurrency: s.concurrency, ForceOS: s.forceOS},
		Uploaded: s.dialer.Uploaded,
	}
	if withArtifacts {
		store, err := s.artifacts()
		if err != nil {
			return nil, err
		}
		r.Options.Artifacts = store
	}
	if !dryRun {
		j, err := state.OpenJournal(s.state.Journal(), s.runID)
		if err != nil {
			return nil, err
		}
		r.Journal = j
	}
	return r, nil
}

// artifacts is the store of the inventory's artifacts: sums verified once
// are pinned in the state dir, and downloads report their progress.
func (s *session) artifacts() (*artifacts.Store, error) {
	pins, err := artifacts.LoadPins(s.state.ArtifactPins())
	if err != nil {
		return nil, err
	}
	store, err := artifacts.ForCluster(s.cluster, artifacts.WithPins(pins), artifacts.WithProgress(func(p artifacts.Progress) {
		ev := events.Event{Type: events.Download, Phase: "artifacts", Message: p.Artifact + " from " + p.From,
			Bytes: p.Bytes, Total: p.Total, Rate: p.Rate(), Duration: p.Elapsed, Action: "progress"}
		if p.Done {
			ev.Action = "done"
		}
		s.events.Emit(ev)
	}))
	if err != nil {
		return nil, usageError{err}
	}
	return store, nil
}

func runPipeline(cmd *cobra.Command, g *globalFlags, f *runFlags, dryRun bool) error {
	ps, err := engine.Select(action.Create(), f.only, f.skip)
	if err != nil {
		return usageError{err}
	}
	s, err := openSession(cmd, g, f.hostsFlags, dryRun && f.diff)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.run(dryRun, true)
	if err != nil {
		return err
	}
	defer r.Journal.Close()
	if f.merge {
		r.Options.MergeKubeconfig = userKubeconfig()
	}
	removed, err := s.state.Removed()
	if err != nil {
		return err
	}
	for h, at := range removed {
		if s.cluster.Host(h) != nil {
			s.events.Warnf("inventory", h, "the inventory and the cluster disagree: %s was deleted from the cluster (k4t delete node, %s) and hosts.yaml still lists it — remove it there, or apply adds it back", h, at.Format(time.RFC3339))
		}
	}
	eng := &engine.Engine{Run: r, Phases: ps}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	_, err = eng.Execute(ctx)
	if err == nil && !dryRun {
		// What apply made of the inventory is the cluster now: a deleted
		// host still listed has joined again, one no longer listed is gone.
		for h := range removed {
			if err := s.state.SetRemoved(h, time.Time{}, false); err != nil {
				return err
			}
		}
	}
	if err != nil {
		var ce *transport.ConnectError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("%w\n(full log: %s)", err, s.logFile.Name())
	}
	return nil
}

func userKubeconfig() string {
	if p := os.Getenv("KUBECONFIG"); p != "" {
		return filepath.SplitList(p)[0]
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".kube", "config")
}
