package action

import (
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

// DeleteNode is the order in which `k4t delete node` takes a node out of
// the cluster and resets its host.
func DeleteNode(d *phases.NodeDeletion) []engine.Phase {
	return []engine.Phase{
		&phases.DeleteCheck{D: d},       // in the cluster; not the first or last master; etcd quorum without it; its host answers (or --force)
		&phases.DeleteDrain{D: d},       // a master out of HAProxy; cordoned and drained
		&phases.DeleteFromCluster{D: d}, // the Node object and the etcd member go
		&phases.DeleteForget{D: d},      // the state dir records it deleted; the rest of the run works without it
		&phases.SLB{},                   // both load balancers without its backend, as one transaction
		&phases.EtcdEndpoints{},         // kubeadm's ClusterConfiguration lists the members left
		&phases.DeleteEtcdServers{D: d}, // the other masters' kube-apiserver --etcd-servers, one at a time
		&phases.ControlPlane{},          // kubeadm's config files on the masters, without it
		&phases.DeleteReset{D: d},       // its host reset (skipped when it does not answer, with --force)
	}
}
