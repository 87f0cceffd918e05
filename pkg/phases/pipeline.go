package phases

import (
	"fmt"
	"strings"
)

// Pipeline is the order in which `k4t create cluster` / `k4t apply` run.
// Read top to bottom, it is what k4t does to a cluster.
func Pipeline() []Phase {
	return []Phase{
		&Preflight{},    // reach every host, check all of them before changing any
		&PKI{},          // CAs and certificates in the state dir (local)
		&OS{},           // hostname, /etc/hosts, sysctls, swap off
		&SLB{},          // HAProxy + keepalived on the slb hosts, as one transaction
		&Etcd{},         // etcd members as systemd units, TLS, health-gated
		&Runtime{},      // containerd, runc, CNI plugins, images imported offline
		&Kubelet{},      // kubeadm, kubelet, kubectl, the kubelet unit
		&ControlPlane{}, // kubeadm init on the first master, joins one at a time
		&Workers{},      // kubeadm join through the VIP
		&Network{},      // bridge CNI + routes between nodes; waits for Ready
		&Kubeconfig{},   // admin kubeconfig to the state dir (server = VIP)
	}
}

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
