package action

import (
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/phases"
)

// EtcdBackup is `k4t etcd backup`: reach the hosts, then one verified
// snapshot from a healthy follower into the state dir.
func EtcdBackup(b *phases.EtcdBackup) []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{}, // reach every host
		b,                   // snapshot, etcdutl snapshot status, copy with sha256, keep the newest N
	}
}
