// Package engine plans and applies phases: each phase works out per host
// what it would change (Changes); plan shows them, apply performs exactly
// those through the transport, journaling what a later plan could not see.
// Which phases a command runs, in which order, is in pkg/action.
package engine

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/transport"
)

// Run is what every phase sees during one k4t invocation.
type Run struct {
	Cluster *v1alpha1.Cluster
	State   *state.Dir
	// Connect returns the one connection to a host for this run.
	Connect func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error)
	Events  *events.Emitter
	Journal *state.Journal
	// DryRun is set by plan: phases must not change anything on hosts.
	DryRun bool
	// Command names what runs, for the run's end ("certs renew complete");
	// empty says "apply".
	Command string
	// Options that phases read.
	Options Options
	// Uploaded, if set, counts the file bytes sent to each host so far;
	// the run's end event reports them.
	Uploaded func() map[string]int64

	pending []state.Pending

	valuesMu sync.Mutex
	values   map[string]*valueOnce
}

type valueOnce struct {
	mu sync.Mutex
	v  any
}

// Value returns what make returns, made once per run and key (e.g. the
// Kubernetes API client every phase shares). A failure is not kept: the
// next call tries again.
func (r *Run) Value(key string, make func() (any, error)) (any, error) {
	r.valuesMu.Lock()
	if r.values == nil {
		r.values = map[string]*valueOnce{}
	}
	vo := r.values[key]
	if vo == nil {
		vo = &valueOnce{}
		r.values[key] = vo
	}
	r.valuesMu.Unlock()
	vo.mu.Lock()
	defer vo.mu.Unlock()
	if vo.v != nil {
		return vo.v, nil
	}
	v, err := make()
	if err != nil {
		return nil, err
	}
	vo.v = v
	return v, nil
}

// Options are run-wide settings from the command line.
type Options struct {
	// Artifacts resolves artifact names to verified local files.
	Artifacts *artifacts.Store
	// Now is the clock (tests set it).
	Now func() time.Time
	// Concurrency bounds how many hosts are worked on at once
	// (--concurrency); zero means DefaultConcurrency.
	Concurrency int
	// MergeKubeconfig, when set, is a kubeconfig file the admin
	// kubeconfig is merged into (--merge-kubeconfig).
	MergeKubeconfig string
	// ForceOS: preflight warns about a distribution k4t does not support,
	// instead of refusing it (--force-os).
	ForceOS bool
}

// Now is the run's clock.
func (r *Run) Now() time.Time {
	if r.Options.Now != nil {
		return r.Options.Now()
	}
	return time.Now()
}

// HostCtx is one host inside a phase.
type HostCtx struct {
	Host *v1alpha1.Host
	Conn transport.Host
	Run  *Run
}

func (hc *HostCtx) Name() string { return hc.Host.Name }

// Facts returns the host's facts, gathered once per run.
func (hc *HostCtx) Facts(ctx context.Context) (*Facts, error) { return hc.Run.Facts(ctx, hc) }

// Facts is what one read-only command learnt about a host.
type Facts struct {
	OS, OSVersion, Arch, Kernel, Hostname, Init, Cgroup string
	// OSLike and OSName are os-release's ID_LIKE and PRETTY_NAME.
	OSLike, OSName string
	// Firewall names an active host firewall (firewalld, ufw); SELinux is
	// "enforcing" when it is.
	Firewall, SELinux                      string
	MemTotalKB, MemAvailableKB, DiskFreeKB int64
	Swap                                   int
	Time                                   time.Time
	RTT                                    time.Duration // round trip of the facts command
	Ports                                  map[int]bool
	Iface                                  string
	BrNetfilter, Overlay                   bool
	Missing                                []string
	PkgManager                             string
	Active                                 map[string]bool // k4t-managed units now running (active, or activating, reloading, deactivating)
	// Sysctl holds the live values of the kernel settings k4t manages
	// ("net.ipv4.ip_forward" -> "1"); "" when the key does not exist.
	Sysctl map[string]string
}

//go:embed scripts/facts.sh
var factsScript string

// Facts gathers (once per run) the facts of hc's host.
func (r *Run) Facts(ctx context.Context, hc *HostCtx) (*Facts, error) {
	v, err := r.Value("facts:"+hc.Name(), func() (any, error) { return gatherFacts(ctx, hc) })
	if err != nil {
		return nil, err
	}
	return v.(*Facts), nil
}

func gatherFacts(ctx context.Context, hc *HostCtx) (*Facts, error) {
	start := time.Now()
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "sh -s -- " + transport.ShellQuote(hc.Host.InternalAddress), Stdin: []byte(factsScript), Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("gathering facts: %w", err)
	}
	rtt := time.Since(start)
	f := parseFacts(string(res.Stdout))
	f.RTT = rtt
	return f, nil
}

func parseFacts(out string) *Facts {
	f := &Facts{Ports: map[int]bool{}, Active: map[string]bool{}, Sysctl: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "os":
			f.OS = v
		case "os_version":
			f.OSVersion = v
		case "os_like":
			f.OSLike = v
		case "os_name":
			f.OSName = v
		case "firewall":
			f.Firewall = v
		case "selinux":
			f.SELinux = v
		case "arch":
			f.Arch = v
		case "kernel":
			f.Kernel = v
		case "hostname":
			f.Hostname = v
		case "init":
			f.Init = v
		case "cgroup":
			f.Cgroup = map[string]string{"cgroup2fs": "v2", "tmpfs": "v1"}[v]
		case "memtotal":
			f.MemTotalKB = n
		case "memavailable":
			f.MemAvailableKB = n
		case "disk_free_kb":
			f.DiskFreeKB = n
		case "swap":
			f.Swap = int(n)
		case "time":
			if t, err := strconv.ParseFloat(v, 64); err == nil {
				f.Time = time.Unix(0, int64(t*1e9))
			}
		case "ports_hex":
			for _, p := range strings.Split(v, ",") {
				if port, err := strconv.ParseInt(p, 16, 32); err == nil && p != "" {
					f.Ports[int(port)] = true
				}
			}
		case "iface":
			// Empty when no interface holds the internal address (NAT, IPv6,
			// no `ip`): the slb phase then asks for spec.loadBalancer.interface.
			if fs := strings.Fields(v); len(fs) > 0 {
				f.Iface = fs[0]
			}
		case "br_netfilter":
			f.BrNetfilter = v == "yes"
		case "overlay":
			f.Overlay = v == "yes"
		case "missing":
			f.Missing = append(f.Missing, v)
		case "pkg":
			f.PkgManager = v
		case "active":
			f.Active[v] = true
		case "sysctl":
			if key, val, ok := strings.Cut(v, "="); ok {
				f.Sysctl[key] = strings.TrimSpace(val)
			}
		}
	}
	return f
}

// Error is a failure on one host in one phase, with what to do about it.
type Error struct {
	Host  string
	Phase string
	Err   error
	Hint  string
}

func (e *Error) Error() string {
	s := e.Phase + ": " + e.Err.Error()
	if e.Host != "" {
		s = e.Host + " / " + s
	}
	if e.Hint != "" {
		s += " — " + e.Hint
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an *Error with a hint.
func Errorf(host, phase, hint, format string, a ...any) *Error {
	return &Error{Host: host, Phase: phase, Hint: hint, Err: fmt.Errorf(format, a...)}
}
