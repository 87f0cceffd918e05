package action

import (
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

// CertsRenew is the order in which `k4t certs renew` (and the roll after
// `k4t certs renew-ca`) runs: one master at a time, the cluster serving.
func CertsRenew(rn *phases.CertsRenewal) []engine.Phase {
	return []engine.Phase{
		&phases.CertsResume{},                 // first what a killed renew left: masters back into HAProxy, paused static pods back, restarts
		&phases.CertsExpiring{Renewal: rn},    // --if-expiring-within: renew only when some certificate expires within it
		&phases.CertsLocal{Renewal: rn},       // k4t's etcd certificates in the state dir, keys kept
		&phases.CertsRoll{Renewal: rn},        // external etcd members, then masters (the first last): HAProxy out, renew, restart, health, back
		&phases.CertsRollWorkers{Renewal: rn}, // kubelet's certificates on the workers, one node at a time
		&phases.CertsKubeconfig{Renewal: rn},  // the bastion's admin kubeconfig
	}
}
