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

// EtcdRestore is `k4t etcd restore`: every member from the same snapshot,
// into a new cluster, as etcd's disaster-recovery guide says. Nothing stops
// before the snapshot has been restored beside every member's data; a run
// killed at any step is finished by running it again with the same snapshot.
func EtcdRestore(x *phases.EtcdRestoration) []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{Restore: true},  // reach every host
		&phases.EtcdRestoreCheck{X: x},    // sha256; the snapshot on every member, restored beside its data; the journal records the restore
		&phases.EtcdRestoreStopAPI{X: x},  // every control plane's static pods aside, until none runs
		&phases.EtcdRestoreSwap{X: x},     // every member: etcd stopped, data dir moved aside, the restored one in its place
		&phases.EtcdRestoreStart{X: x},    // members start together; healthy, identical hashkv
		&phases.EtcdRestoreStartAPI{X: x}, // control planes back; /readyz on every master
		&phases.EtcdRestoreKubelets{X: x}, // every kubelet restarted; every node Ready; the journal closes the restore
	}
}

// EtcdBackupSchedule is `k4t etcd backup --schedule`: a snapshot timer on
// every member, which needs no bastion.
func EtcdBackupSchedule(s *phases.EtcdSnapshotSchedule) []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{}, // reach every host
		s,                   // script, service and timer on every member, each at its own offset
	}
}

// EtcdBackupUnschedule is `k4t etcd backup --remove`.
func EtcdBackupUnschedule() []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{},              // reach every host
		&phases.EtcdSnapshotUnschedule{}, // timers and scripts off every member; the snapshots stay
	}
}

// EtcdBackupCollect is `k4t etcd backup --collect`.
func EtcdBackupCollect(c *phases.EtcdSnapshotCollect) []engine.Phase {
	return []engine.Phase{
		&phases.Preflight{}, // reach every host
		c,                   // the newest scheduled snapshot of each member, sha256-checked, into the state dir
	}
}
