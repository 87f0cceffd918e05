package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Action is one step of a cleanup.
type Action struct {
	Kind   string   // kill, unmount, rmcgroup, dellink, delbridge, iptables, sysctl, rmdir
	Target string   // pid, path, link name
	Args   []string // for iptables: the delete command
}

func (a Action) String() string {
	if a.Kind == "iptables" {
		return "iptables: " + strings.Join(a.Args, " ")
	}
	return a.Kind + " " + a.Target
}

// leftovers is what an earlier lab (running, stopped or killed) left on the
// machine.
type leftovers struct {
	Pids         []int      // lab nspawn processes still running
	Mounts       []string   // mount points under the work dir
	Cgroups      []string   // directories named CgroupName in any hierarchy
	Links        []string   // links attached to the bridge
	Bridge       string     // the bridge's name
	BridgeExists bool       // it exists
	BridgeOurs   bool       // and carries our alias
	Iptables     [][]string // delete commands for rules naming the bridge
	SysctlSaved  bool       // machine values saved by a lab are still to restore
	DirEntries   []string   // work dir entries to delete
}

// planCleanup orders the steps: processes first (they hold mounts, cgroups
// and veths), then cgroups (removing one kills whatever still runs in it,
// such as a container init whose nspawn was killed), mounts deepest first,
// links, the bridge (only if ours), rules, sysctls, and files last (never
// while something is mounted).
func planCleanup(f leftovers) []Action {
	var out []Action
	for _, p := range f.Pids {
		out = append(out, Action{Kind: "kill", Target: strconv.Itoa(p)})
	}
	for _, c := range f.Cgroups {
		out = append(out, Action{Kind: "rmcgroup", Target: c})
	}
	ms := append([]string(nil), f.Mounts...)
	sort.Slice(ms, func(i, j int) bool {
		if a, b := strings.Count(ms[i], "/"), strings.Count(ms[j], "/"); a != b {
			return a > b
		}
		return ms[i] > ms[j]
	})
	for _, m := range ms {
		out = append(out, Action{Kind: "unmount", Target: m})
	}
	if f.BridgeExists && f.BridgeOurs {
		for _, l := range f.Links {
			out = append(out, Action{Kind: "dellink", Target: l})
		}
		out = append(out, Action{Kind: "delbridge", Target: f.Bridge})
	}
	for _, r := range f.Iptables {
		out = append(out, Action{Kind: "iptables", Args: r})
	}
	if f.SysctlSaved {
		out = append(out, Action{Kind: "sysctl", Target: "restore"})
	}
	for _, d := range f.DirEntries {
		out = append(out, Action{Kind: "rmdir", Target: d})
	}
	return out
}

// findLeftovers looks at the machine: the work dir's files, mountinfo, every
// cgroup hierarchy, the bridge, iptables.
func (l *Lab) findLeftovers(ctx context.Context) leftovers {
	f := leftovers{Bridge: l.Bridge}
	hostDirs, _ := filepath.Glob(filepath.Join(l.Dir, "hosts", "*"))
	for _, hd := range hostDirs {
		if pid := l.nspawnPid(filepath.Base(hd)); pid != 0 {
			f.Pids = append(f.Pids, pid)
		}
	}
	prefix := filepath.Clean(l.Dir) + "/"
	seen := map[string]bool{}
	for _, m := range mountPoints() {
		if strings.HasPrefix(m, prefix) && !seen[m] {
			seen[m] = true
			f.Mounts = append(f.Mounts, m)
		}
	}
	f.Cgroups = findGroups(l.CgroupName)
	var alias string
	f.BridgeExists, alias = link(l.Bridge)
	f.BridgeOurs = alias == l.bridgeAlias()
	if f.BridgeExists && f.BridgeOurs {
		f.Links = bridgeMembers(l.Bridge)
	}
	f.Iptables = iptablesRules(ctx, l.Bridge)
	_, err := os.Stat(l.sysctlPath())
	f.SysctlSaved = err == nil
	ents, _ := os.ReadDir(l.Dir)
	cache := filepath.Clean(l.CacheDir)
	for _, e := range ents {
		p := filepath.Join(l.Dir, e.Name())
		if p == cache || strings.HasPrefix(cache, p+"/") || e.Name() == ".lock" {
			continue
		}
		f.DirEntries = append(f.DirEntries, p)
	}
	return f
}

// Cleanup removes whatever a lab in this work dir left on the machine,
// running or not: it kills the hosts (no clean shutdown: use Down for that),
// unmounts, removes cgroups, links and the bridge, restores sysctls and
// empties the work dir (the base cache stays). It is idempotent and safe to
// run anytime; Up runs it first.
func (l *Lab) Cleanup(ctx context.Context) error {
	return l.locked(ctx, "", func() error { return l.cleanup(ctx) })
}

func (l *Lab) cleanup(ctx context.Context) error {
	plan := planCleanup(l.findLeftovers(ctx))
	var errs []error
	for _, a := range plan {
		t := time.Now()
		if err := l.do(ctx, a); err != nil {
			errs = append(errs, err)
		}
		l.log().Debug("lab cleanup", "step", a.String(), "took", time.Since(t).Round(time.Millisecond))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab cleanup: %w (re-run `k4t lab down`; it is safe to repeat)", err)
	}
	return nil
}

func (l *Lab) do(ctx context.Context, a Action) error {
	switch a.Kind {
	case "kill":
		pid, _ := strconv.Atoi(a.Target)
		if ip := initPid(pid); ip != 0 {
			_ = syscall.Kill(ip, syscall.SIGKILL)
		}
		if !waitGone(ctx, pid, 5*time.Second) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(ctx, pid, 5*time.Second)
		}
	case "unmount":
		if err := unix.Unmount(a.Target, 0); err != nil {
			if err := unix.Unmount(a.Target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmounting %s: %w", a.Target, err)
			}
		}
	case "rmcgroup":
		return removeCgroupTree(a.Target)
	case "dellink", "delbridge":
		if exists, _ := link(a.Target); exists {
			return run(ctx, "", "ip", "link", "del", a.Target)
		}
	case "iptables":
		return run(ctx, "", a.Args[0], a.Args[1:]...)
	case "sysctl":
		return l.restoreSysctls()
	case "rmdir":
		return removeTree(a.Target)
	}
	return nil
}
