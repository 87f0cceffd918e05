package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hierarchy is one mounted cgroup hierarchy and this process's place in it.
type hierarchy struct {
	Mount   string // e.g. /sys/fs/cgroup/memory
	Current string // this process's cgroup in it, e.g. /process_api/x
	Cpuset  bool   // cpuset needs cpus/mems copied into new children
}

// hierarchies lists every mounted cgroup hierarchy (v1 controllers,
// name=systemd, cgroup2) with this process's cgroup in each.
func hierarchies() ([]hierarchy, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	return parseHierarchies(string(mi), string(pc)), nil
}

// parseHierarchies matches /proc/self/cgroup lines to cgroup mounts in
// mountinfo. Only the first mount of each hierarchy is used.
func parseHierarchies(mountinfo, proccgroup string) []hierarchy {
	type mnt struct {
		point string
		v2    bool
		opts  map[string]bool
	}
	var mounts []mnt
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || (qf[0] != "cgroup" && qf[0] != "cgroup2") {
			continue
		}
		m := mnt{point: unescapeMount(pf[4]), v2: qf[0] == "cgroup2", opts: map[string]bool{}}
		for _, o := range strings.Split(qf[2], ",") {
			m.opts[o] = true
		}
		mounts = append(mounts, m)
	}
	var out []hierarchy
	used := map[string]bool{}
	for _, line := range strings.Split(proccgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, path := parts[1], parts[2]
		for _, m := range mounts {
			if used[m.point] {
				continue
			}
			match := false
			if ctrls == "" {
				match = m.v2
			} else if !m.v2 {
				match = true
				for _, c := range strings.Split(ctrls, ",") {
					if !m.opts[c] {
						match = false
					}
				}
			}
			if match {
				used[m.point] = true
				out = append(out, hierarchy{Mount: m.point, Current: path, Cpuset: strings.Contains(","+ctrls+",", ",cpuset,")})
				break
			}
		}
	}
	return out
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// hostCgroups creates <current>/<group>/<host> in every hierarchy and
// returns the directories.
func hostCgroups(hs []hierarchy, group, host string) ([]string, error) {
	var dirs []string
	for _, h := range hs {
		parent := filepath.Join(h.Mount, h.Current)
		for _, d := range []string{filepath.Join(parent, group), filepath.Join(parent, group, host)} {
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("creating cgroup %s: %w", d, err)
			}
			if h.Cpuset {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if cur, _ := os.ReadFile(filepath.Join(d, f)); strings.TrimSpace(string(cur)) != "" {
						continue
					}
					b, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
					if err != nil {
						return nil, fmt.Errorf("cgroup %s: %w", d, err)
					}
					if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
						return nil, fmt.Errorf("cgroup %s: writing %s: %w", d, f, err)
					}
				}
			}
		}
		dirs = append(dirs, filepath.Join(parent, group, host))
	}
	return dirs, nil
}

// findGroups returns every directory called group in every mounted
// hierarchy (not looking inside them), whoever's cgroup it sits in: a killed
// run from another session leaves them under its own cgroup.
func findGroups(group string) []string {
	hs, err := hierarchies()
	if err != nil {
		return nil
	}
	var out []string
	for _, h := range hs {
		root := h.Mount
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Count(strings.TrimPrefix(p, root), "/") > 6 {
				return fs.SkipDir
			}
			if d.Name() == group && p != root {
				out = append(out, p)
				return fs.SkipDir
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// cgroupTree lists dir and all its descendants, deepest first.
func cgroupTree(dir string) []string {
	var all []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			all = append(all, p)
		}
		return nil
	})
	sort.Slice(all, func(i, j int) bool {
		return strings.Count(all[i], "/") > strings.Count(all[j], "/")
	})
	return all
}

// cgroupPids lists the processes in dir and its descendants.
func cgroupPids(dir string) []int {
	var pids []int
	for _, d := range cgroupTree(dir) {
		f, err := os.Open(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && n > 0 {
				pids = append(pids, n)
			}
		}
		f.Close()
	}
	return pids
}

// removeCgroupTree kills what is left in dir's subtree and removes it,
// deepest first. Every process in it is a lab process by construction.
func removeCgroupTree(dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, pid := range cgroupPids(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		var last error
		for _, d := range cgroupTree(dir) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = fmt.Errorf("removing cgroup %s: %w", d, err)
			}
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = fmt.Errorf("cgroup %s still exists", dir)
			}
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
}
