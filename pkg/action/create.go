// Package action lists, one file per command, the phases that command runs,
// in order: each command's pipeline is readable top to bottom in one place.
// The phases themselves live in pkg/phases; the engine that plans and
// applies them in pkg/engine.
package action

import (
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

// Create is the order in which `k4t create cluster` / `k4t apply` run.
// Read top to bottom, it is what k4t does to a cluster.
func Create() []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{Install: true}, // reach every host, check all of them before changing any
		&phases.Artifacts{},              // upstream releases and images fetched onto the bastion and checked (local)
		&phases.PKI{},                    // CAs and certificates in the state dir (local)
		&phases.OS{},                     // hostname, /etc/hosts, sysctls, swap off
		&phases.SLB{},                    // HAProxy + keepalived on the slb hosts, as one transaction
		&phases.Etcd{},                   // etcd members as systemd units, TLS, health-gated
		&phases.Runtime{},                // containerd, runc, CNI plugins, images imported offline
		&phases.Kubelet{},                // kubeadm, kubelet, kubectl, the kubelet unit
		&phases.EtcdEndpoints{},          // a running cluster's kubeadm-config lists every etcd member, for masters that join
		&phases.ControlPlane{},           // kubeadm init on the first master, joins one at a time
		&phases.Workers{},                // kubeadm join through the VIP
		&phases.Network{},                // bridge CNI + routes between nodes; waits for Ready
		&phases.NodeLabels{},             // the inventory's labels on each Node (and only k4t's removed)
		&phases.Kubeconfig{},             // admin kubeconfig to the state dir (server = VIP)
	}
}
