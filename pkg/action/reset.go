package action

import (
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

// Reset is the order in which `k4t reset` tears the cluster down.
func Reset() []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{},   // reach every host first: a reset that cannot finish does not start
		phases.ResetWorkers(), // kubeadm reset; kubelet, containerd and the pod network removed
		phases.ResetMasters(), // the same on the masters
		phases.ResetEtcd(),    // etcd stopped and removed on every member, data dir included
		phases.ResetSLB(),     // keepalived (VIP released) and HAProxy stopped and disabled
		phases.ResetOS(),      // k4t's sysctls, /etc/hosts block and binaries, on every host
		&phases.ResetState{},  // the state dir archived with a timestamp
	}
}
