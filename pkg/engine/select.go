package engine

import (
	"fmt"
	"strings"
)

// Select filters phases by name like kubeadm's phases: only (if not empty)
// keeps the named ones, skip drops the named ones. Unknown names are errors.
func Select(all []Phase, only, skip []string) ([]Phase, error) {
	known := map[string]bool{}
	var names []string
	for _, p := range all {
		known[p.Name()] = true
		names = append(names, p.Name())
	}
	for _, n := range append(append([]string{}, only...), skip...) {
		if !known[n] {
			return nil, fmt.Errorf("unknown phase %q (phases: %s)", n, strings.Join(names, ", "))
		}
	}
	in := func(list []string, n string) bool {
		for _, x := range list {
			if x == n {
				return true
			}
		}
		return false
	}
	var out []Phase
	for _, p := range all {
		if (len(only) == 0 || in(only, p.Name())) && !in(skip, p.Name()) {
			out = append(out, p)
		}
	}
	return out, nil
}
