package templates

import (
	"path"
	"strings"
	"time"
)

// Where `k4t etcd restore` and the scheduled snapshots keep their things on
// a host.
const (
	// EtcdRestoreMarker holds the id of the restore whose data the member
	// runs: a restore step that finds its own id there is done.
	EtcdRestoreMarker = "/var/lib/k4t/etcd-restore-id"
	// EtcdRestorePaused is where the control plane's manifests wait while
	// etcd is restored.
	EtcdRestorePaused = "/etc/kubernetes/k4t/restore-paused"
	// EtcdSnapshotDir holds the scheduled snapshots of the member on the host.
	EtcdSnapshotDir = "/var/lib/k4t/etcd-snapshots"
	// EtcdSnapshotScriptPath, EtcdSnapshotUnit: the scheduled snapshot's
	// script and its unit's name (.service and .timer).
	EtcdSnapshotScriptPath = "/etc/etcd/k4t-etcd-snapshot.sh"
	EtcdSnapshotUnit       = "k4t-etcd-snapshot"
	// DefaultBumpRevision is how far a restore moves etcd's revision
	// forward, so watchers relist instead of seeing time go backwards.
	DefaultBumpRevision = 1_000_000_000
)

// EtcdRestoreInput is the restore script of one host: its member steps
// (prepare, swap) when it runs an etcd member, its control-plane steps
// (pause, resume) when it is a master.
type EtcdRestoreInput struct {
	// ID names this restore (a UTC time); Token is the new cluster's
	// --initial-cluster-token.
	ID, Token string
	Host      string
	// Member: the host runs an etcd member, one of Members.
	Member bool
	// Members is the whole cluster after the restore.
	Members []EtcdMember
	// Snapshot is the snapshot's path on the host.
	Snapshot string
	// DataDir; default /var/lib/etcd.
	DataDir string
	// BumpRevision; default DefaultBumpRevision.
	BumpRevision int64
	// Master: the host runs a control plane to stop and start.
	Master bool
}

// EtcdRestoreScript renders the script, run with `sh -s -- STEP`.
func EtcdRestoreScript(in EtcdRestoreInput) ([]byte, error) {
	p := problems{what: "etcd-restore.sh"}
	p.name("Host", in.Host)
	if in.ID == "" || strings.ContainsAny(in.ID, " '\"$`\\/\n") {
		p.add("ID: %q must be one word", in.ID)
	}
	p.name("Token", in.Token)
	if !in.Member && !in.Master {
		p.add("Member, Master: the host has nothing to restore")
	}
	v := struct {
		EtcdRestoreInput
		Name, PeerURL, InitialCluster, Next, Aside, Marker, MarkerDir string
		Lock, Paused, Manifests, Pods, Crictl                         string
	}{EtcdRestoreInput: in, Marker: EtcdRestoreMarker, MarkerDir: path.Dir(EtcdRestoreMarker), Lock: EtcdRestoreMarker + ".lock",
		Paused: EtcdRestorePaused, Manifests: "/etc/kubernetes/manifests",
		Pods: "kube-apiserver kube-controller-manager kube-scheduler", Crictl: "crictl --runtime-endpoint unix://" + ContainerdSocket}
	if in.Member {
		ev, err := EtcdInput{Name: in.Host, Members: in.Members, ClusterState: "new", ClusterToken: in.Token, DataDir: in.DataDir}.view()
		if err != nil {
			return nil, err
		}
		p.absPath("Snapshot", in.Snapshot)
		if containsSpace(in.Snapshot) || containsSpace(ev.DataDir) || ev.DataDir == "/" {
			p.add("Snapshot, DataDir: %q, %q must be paths without spaces", in.Snapshot, ev.DataDir)
		}
		if in.BumpRevision == 0 {
			v.BumpRevision = DefaultBumpRevision
		}
		if v.BumpRevision < 0 {
			p.add("BumpRevision: %d is negative", in.BumpRevision)
		}
		v.Name, v.PeerURL, v.InitialCluster, v.DataDir = in.Host, ev.PeerURL, ev.InitialCluster, ev.DataDir
		v.Next, v.Aside = ev.DataDir+".restore-"+in.ID, ev.DataDir+".before-restore-"+in.ID
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return render("etcd-restore.sh.tmpl", v)
}

// EtcdSnapshotJobInput is the scheduled snapshot of one member.
type EtcdSnapshotJobInput struct {
	// Host is the member's name (in the snapshots' names); Address its IP.
	Host, Address string
	// Keep is how many snapshots stay on the host.
	Keep int
	// Every is the interval; Offset the first run after the timer starts
	// or the host boots (members get different ones).
	Every, Offset time.Duration
}

type snapshotJobView struct {
	Host, Dir, Endpoint, CA, Cert, Key, Script string
	Every, Offset                              string
	EverySeconds, OffsetSeconds                int64
	Keep                                       int
}

func (in EtcdSnapshotJobInput) view() (snapshotJobView, error) {
	p := problems{what: "etcd snapshot schedule"}
	p.name("Host", in.Host)
	p.ip("Address", in.Address)
	if in.Keep < 1 {
		p.add("Keep: %d, need at least 1", in.Keep)
	}
	if in.Every < time.Minute || in.Every%time.Second != 0 {
		p.add("Every: %s, need whole seconds and at least a minute", in.Every)
	}
	if in.Offset < 0 || in.Offset%time.Second != 0 {
		p.add("Offset: %s, need whole seconds, not negative", in.Offset)
	}
	if err := p.err(); err != nil {
		return snapshotJobView{}, err
	}
	return snapshotJobView{Host: in.Host, Dir: EtcdSnapshotDir, Endpoint: etcdURL(in.Address, 2379),
		CA: EtcdCAFile, Cert: EtcdHealthCert, Key: EtcdHealthKey,
		Script: EtcdSnapshotScriptPath, Every: FormatDays(in.Every), Offset: FormatDays(in.Offset),
		EverySeconds: int64(in.Every / time.Second), OffsetSeconds: max(1, int64(in.Offset/time.Second)), Keep: in.Keep}, nil
}

// EtcdSnapshotJob renders the script (0700 at EtcdSnapshotScriptPath), the
// oneshot service that runs it and its timer, in that order.
func EtcdSnapshotJob(in EtcdSnapshotJobInput) (script, service, timer []byte, err error) {
	v, err := in.view()
	if err != nil {
		return nil, nil, nil, err
	}
	if script, err = render("k4t-etcd-snapshot.sh.tmpl", v); err != nil {
		return nil, nil, nil, err
	}
	if service, err = render("k4t-etcd-snapshot.service.tmpl", v); err != nil {
		return nil, nil, nil, err
	}
	if timer, err = render("k4t-etcd-snapshot.timer.tmpl", v); err != nil {
		return nil, nil, nil, err
	}
	return script, service, timer, nil
}

// EtcdSnapshotOffset staggers member i of n over every: i*every/n plus a
// minute, in whole seconds.
func EtcdSnapshotOffset(i, n int, every time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	return (time.Minute + every*time.Duration(i)/time.Duration(n)).Truncate(time.Second)
}
