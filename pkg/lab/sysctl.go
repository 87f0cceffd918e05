package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// globalSysctls are set on the machine while the lab is up: kubelet inside a
// host finds them right and writes nothing (it cannot: /proc/sys is read-only
// there). The inotify limits are per user and every host's root is the
// machine's root: with the default 128 instances, the kubelets of a 7-host
// lab fail with "inotify_init: too many open files". They are global, so
// Down restores the saved values.
var globalSysctls = map[string]string{
	"vm.overcommit_memory":          "1",
	"kernel.panic":                  "10",
	"kernel.panic_on_oops":          "1",
	"fs.inotify.max_user_instances": "8192",
	"fs.inotify.max_user_watches":   "1048576",
}

func sysctlFile(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// setSysctls saves the current values (unless a save from an earlier run is
// still there: those are the machine's real values) and sets the lab's.
func (l *Lab) setSysctls() error {
	if _, err := os.Stat(l.sysctlPath()); errors.Is(err, fs.ErrNotExist) {
		var b strings.Builder
		for _, k := range sortedKeys(globalSysctls) {
			v, err := os.ReadFile(sysctlFile(k))
			if err != nil {
				return fmt.Errorf("lab: reading sysctl %s: %w", k, err)
			}
			fmt.Fprintf(&b, "%s=%s\n", k, strings.TrimSpace(string(v)))
		}
		if err := writeFileAtomic(l.sysctlPath(), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("lab: saving sysctls: %w", err)
		}
	}
	for _, k := range sortedKeys(globalSysctls) {
		if err := os.WriteFile(sysctlFile(k), []byte(globalSysctls[k]+"\n"), 0o644); err != nil {
			return fmt.Errorf("lab: setting sysctl %s=%s: %w", k, globalSysctls[k], err)
		}
	}
	return nil
}

// parseSaved reads "key=value" lines.
func parseSaved(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			if _, known := globalSysctls[k]; known {
				out[k] = v
			}
		}
	}
	return out
}

// restoreSysctls writes back the saved values and forgets them.
func (l *Lab) restoreSysctls() error {
	b, err := os.ReadFile(l.sysctlPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	saved := parseSaved(string(b))
	for _, k := range sortedKeys(saved) {
		if err := os.WriteFile(sysctlFile(k), []byte(saved[k]+"\n"), 0o644); err != nil {
			return fmt.Errorf("lab: restoring sysctl %s=%s: %w", k, saved[k], err)
		}
	}
	return os.Remove(l.sysctlPath())
}
