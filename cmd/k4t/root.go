package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitRuntime = 1 // a host, phase or command failed
	exitUsage   = 2 // bad flags, or an inventory that does not validate
	exitSignal  = 130
)

// usageError marks errors that are the user's input, not a runtime failure.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// globalFlags are the persistent flags every command sees, bound to viper
// so that K4T_* env vars and a config file set them too.
type globalFlags struct {
	v *viper.Viper
}

func (g *globalFlags) Verbose() bool   { return g.v.GetBool("verbose") }
func (g *globalFlags) LogFile() string { return g.v.GetString("log-file") }
func (g *globalFlags) Output() string  { return g.v.GetString("output") }
func (g *globalFlags) Concurrency() int {
	if n := g.v.GetInt("concurrency"); n > 0 {
		return n
	}
	return 20
}
func (g *globalFlags) StateRoot() string { return g.v.GetString("state-dir") }

func newRootCmd() *cobra.Command {
	g := &globalFlags{v: viper.New()}
	root := &cobra.Command{
		Use:           "k4t",
		Short:         "Provision highly-available Kubernetes clusters over SSH",
		Long:          "k4t turns bare Linux hosts into an HA Kubernetes cluster (2 slb with a VIP, 3 masters with stacked etcd, N workers) from one hosts.yaml, and keeps it alive.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if f := g.v.GetString("config"); f != "" {
				g.v.SetConfigFile(f)
				if err := g.v.ReadInConfig(); err != nil {
					return usagef("reading config file %s: %v", f, err)
				}
			}
			switch g.Output() {
			case "text", "json":
			case "prometheus":
				if cmd.Name() != "status" {
					return usagef("--output prometheus is for k4t status; other commands write text or json")
				}
			default:
				return usagef("--output must be text or json, not %q", g.Output())
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.BoolP("verbose", "v", false, "log debug detail (commands run, timings)")
	pf.String("log-file", "", "full log file (default: the cluster's state dir, logs/)")
	pf.StringP("output", "o", "text", "output format: text for people, json for one event per line (k4t status: also prometheus)")
	pf.Int("concurrency", 20, "hosts worked on in parallel")
	pf.String("state-dir", defaultStateRoot(), "root of k4t's state (one directory per cluster)")
	pf.String("config", "", "k4t settings file (yaml); settings also come from K4T_* env vars")
	_ = g.v.BindPFlags(pf)
	g.v.SetEnvPrefix("K4T")
	g.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	g.v.AutomaticEnv()
	for _, c := range commands {
		root.AddCommand(c(g))
	}
	return root
}

func defaultStateRoot() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".k4t"
	}
	return home + "/.k4t"
}

func execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
	}
	return exitCode(ctx, err)
}

// exitCode maps an error to the documented exit codes.
func exitCode(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	switch {
	case errors.As(err, &ue) || isCobraUsage(err):
		return exitUsage
	case ctx.Err() != nil:
		return exitSignal
	}
	return exitRuntime
}

// isCobraUsage recognises cobra's own flag and argument errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
