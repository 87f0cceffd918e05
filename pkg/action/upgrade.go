package action

import (
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

// Upgrade is the order in which `k4t upgrade` runs: to the inventory's
// spec.kubernetes.version, one node at a time, the cluster serving.
func Upgrade(o *phases.UpgradeOptions) []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{},                 // reach every host
		&phases.Artifacts{},                 // the target's releases and images fetched onto the bastion and checked (local)
		&phases.UpgradeCheck{Opts: o},       // versions and skew, health, certificates, artifacts, PDBs: changes nothing
		&phases.UpgradeSnapshot{Opts: o},    // a verified etcd snapshot in the state dir first
		&phases.Etcd{},                      // etcd at spec.etcd.version: one member at a time, health-gated (nothing when unchanged)
		&phases.Runtime{},                   // the target's images on every node, before any node needs them
		&phases.UpgradeMasters{Opts: o},     // one master at a time: HAProxy out, drain, kubeadm upgrade, kubelet, health, back
		&phases.UpgradeWorkers{Opts: o},     // workers in batches: drain, kubeadm upgrade node, kubelet, Ready, uncordon
		&phases.Kubelet{AfterUpgrade: true}, // converge: binaries and unit as apply has them
		&phases.ControlPlane{},              // converge: kubeadm's config files at the new version
		&phases.Workers{},                   // converge: the workers' join configs
		&phases.Kubeconfig{},                // the admin kubeconfig in the state dir
	}
}
