package state

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// The hosts `k4t delete node` took out of the cluster while hosts.yaml may
// still list them: removed-hosts.txt, one "NAME TIME" per line.

func (d *Dir) removedPath() string { return d.Path("removed-hosts.txt") }

// Removed returns the hosts deleted from the cluster, with when.
func (d *Dir) Removed() (map[string]time.Time, error) {
	b, err := os.ReadFile(d.removedPath())
	if os.IsNotExist(err) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		t, err := time.Parse(time.RFC3339, f[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", d.removedPath(), l, err)
		}
		out[f[0]] = t
	}
	return out, nil
}

// SetRemoved records host as deleted from the cluster at t (removed) or
// takes it off the record (!removed: it is a node again).
func (d *Dir) SetRemoved(host string, t time.Time, removed bool) error {
	m, err := d.Removed()
	if err != nil {
		return err
	}
	if removed {
		m[host] = t
	} else {
		delete(m, host)
	}
	var b strings.Builder
	for _, h := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s %s\n", h, m[h].UTC().Format(time.RFC3339))
	}
	return d.WriteFile(d.removedPath(), []byte(b.String()), 0o600)
}
