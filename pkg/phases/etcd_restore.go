package phases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// `k4t etcd restore`, following etcd's disaster-recovery guide: every member
// restored from the same snapshot into a new cluster, with the API servers
// stopped meanwhile. Each phase finds on the hosts how far an earlier,
// killed run got (the member's restore marker, the paused manifests), and
// the journal's intent names the restore, so running it again with the same
// snapshot finishes it. Data dirs are moved aside, never deleted.

const (
	restorePhase = "etcd-restore"
	restoreKey   = "etcd-restore"
	// restoreTimeout bounds one script step (a restore of a large snapshot).
	restoreTimeout = 10 * time.Minute
)

// EtcdRestoration is one restore, shared by its phases.
type EtcdRestoration struct {
	// From is a snapshot file, or "latest": the newest in the state dir.
	From string
	// BumpRevision; 0 means templates.DefaultBumpRevision.
	BumpRevision int64

	// Set by Resolve.
	Snapshot, SHA256 string
	Size             int64
	// ID names this restore; Resumed: an earlier run of it stopped half-way
	// and this one finishes it.
	ID      string
	Resumed bool
	// superseded is an unfinished restore of another snapshot, which this
	// one replaces.
	superseded string
}

// pendingRestore is an unfinished restore recorded in the journal.
type pendingRestore struct{ ID, SHA256, Snapshot string }

func readPendingRestore(r *engine.Run) (*pendingRestore, error) {
	if r.State == nil {
		return nil, nil
	}
	pending, err := state.PendingIntents(r.State.Journal())
	if err != nil {
		return nil, fmt.Errorf("reading the journal: %w", err)
	}
	for _, p := range slices.Backward(pending) {
		if p.Key != restoreKey {
			continue
		}
		f := strings.Fields(p.Desc)
		if len(f) < 3 {
			continue
		}
		return &pendingRestore{ID: f[0], SHA256: f[1], Snapshot: strings.Join(f[2:], " ")}, nil
	}
	return nil, nil
}

// RestorePending says which restore, if any, stopped half-way: until it is
// finished, the cluster's etcd may be stopped or half restored.
func RestorePending(r *engine.Run) (string, error) {
	p, err := readPendingRestore(r)
	if err != nil || p == nil {
		return "", err
	}
	return p.Snapshot, nil
}

// Resolve finds the snapshot and checks it against its sha256 file, and
// picks up an unfinished restore of the same snapshot. It reads only the
// state dir; a snapshot that does not check out stops the restore here,
// before any host is touched.
func (x *EtcdRestoration) Resolve(r *engine.Run) error {
	if x.Snapshot != "" {
		return nil
	}
	path := x.From
	if path == "" || path == "latest" {
		p, err := LatestSnapshot(r)
		if err != nil {
			return err
		}
		path = p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return engine.Errorf("", restorePhase, "name a snapshot with --from (k4t etcd backup makes one)", "reading the snapshot: %v", err)
	}
	sum := sha256.Sum256(b)
	x.Snapshot, x.SHA256, x.Size = path, hex.EncodeToString(sum[:]), int64(len(b))
	if want, err := os.ReadFile(path + ".sha256"); err == nil {
		if f := strings.Fields(string(want)); len(f) == 0 || f[0] != x.SHA256 {
			return engine.Errorf("", restorePhase, "the file is damaged: restore another snapshot (ls "+filepath.Dir(path)+")",
				"%s does not match its sha256 file (%s.sha256): its sha256 is %s; nothing was stopped", path, path, x.SHA256)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	p, err := readPendingRestore(r)
	if err != nil {
		return err
	}
	switch {
	case p != nil && p.SHA256 == x.SHA256:
		x.ID, x.Resumed = p.ID, true
	default:
		if p != nil {
			x.superseded = p.ID
		}
		x.ID = r.Now().UTC().Format("20060102T150405Z")
	}
	return nil
}

// LatestSnapshot is the newest snapshot in the state dir, of any kind
// (backup, pre-upgrade, collected from the members' schedule).
func LatestSnapshot(r *engine.Run) (string, error) {
	dir := SnapshotDir(r)
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	newest := newestSnapshot(names, "")
	if newest == "" {
		return "", engine.Errorf("", restorePhase, "take one with k4t etcd backup, or name a file with --from", "no snapshot in %s", dir)
	}
	return filepath.Join(dir, newest), nil
}

func (x *EtcdRestoration) remoteSnapshot() string {
	return snapshotRemoteDir + "/restore-" + x.ID + ".db"
}

func (x *EtcdRestoration) token(r *engine.Run) string {
	return "k4t-" + r.Cluster.Metadata.Name + "-restore-" + strings.ToLower(x.ID)
}

// script renders the restore script of host h.
func (x *EtcdRestoration) script(r *engine.Run, h *v1alpha1.Host) ([]byte, error) {
	member := slices.Contains(r.Cluster.EtcdMembers(), h)
	in := templates.EtcdRestoreInput{ID: x.ID, Token: x.token(r), Host: h.Name, Member: member,
		Snapshot: x.remoteSnapshot(), DataDir: r.Cluster.Spec.Etcd.DataDir, BumpRevision: x.BumpRevision,
		Master: h.HasRole(v1alpha1.RoleMaster)}
	if member {
		for _, m := range r.Cluster.EtcdMembers() {
			in.Members = append(in.Members, templates.EtcdMember{Name: m.Name, Address: m.InternalAddress})
		}
	}
	return templates.EtcdRestoreScript(in)
}

// step is one run of the restore script on a host.
func (x *EtcdRestoration) step(hc *engine.HostCtx, step, desc string) (*engine.Change, error) {
	script, err := x.script(hc.Run, hc.Host)
	if err != nil {
		return nil, err
	}
	r := hc.Run
	return &engine.Change{Kind: engine.KindCommand, Key: "etcd-restore:" + step, Desc: desc,
		Apply: func(ctx context.Context, h transport.Host) error {
			res, err := h.Run(ctx, transport.Cmd{Command: "sh -s -- " + step, Stdin: script, Timeout: restoreTimeout})
			if out := strings.TrimSpace(string(res.Stdout)); out != "" {
				r.Events.Infof(restorePhase, hc.Name(), "%s", out)
			}
			return err
		}}, nil
}

// restoredBy reads which restore the member's data comes from.
func restoredBy(ctx context.Context, h transport.Host) (string, error) {
	res, err := h.Run(ctx, transport.Cmd{Command: "cat " + templates.EtcdRestoreMarker + " 2>/dev/null; true", Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// allRestored: every member already runs this restore's data.
func (x *EtcdRestoration) allRestored(ctx context.Context, r *engine.Run) (bool, error) {
	for _, m := range r.Cluster.EtcdMembers() {
		conn, err := r.Connect(ctx, m)
		if err != nil {
			return false, engine.WrapPhase(restorePhase, m.Name, err)
		}
		id, err := restoredBy(ctx, conn)
		if err != nil {
			return false, engine.WrapPhase(restorePhase, m.Name, err)
		}
		if id != x.ID {
			return false, nil
		}
	}
	return true, nil
}

// EtcdRestoreCheck checks the snapshot and restores it on every member
// beside the data dir, while everything still runs: a snapshot that does
// not check out, or a member that cannot restore it, stops the restore
// before anything stops. Then the journal records the restore.
type EtcdRestoreCheck struct{ X *EtcdRestoration }

func (*EtcdRestoreCheck) Name() string { return restorePhase }
func (*EtcdRestoreCheck) Title() string {
	return "etcd restore: the snapshot checked and restored beside each member's data, before anything stops"
}
func (*EtcdRestoreCheck) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (p *EtcdRestoreCheck) Prepare(_ context.Context, r *engine.Run) error {
	x := p.X
	if err := x.Resolve(r); err != nil {
		return err
	}
	how := "restore " + x.ID
	if x.Resumed {
		how = "finishing restore " + x.ID + ", which stopped half-way"
	}
	r.Events.Infof(restorePhase, "", "%s from %s (%d bytes, sha256 %s…)", how, x.Snapshot, x.Size, x.SHA256[:12])
	return nil
}

func (p *EtcdRestoreCheck) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	x := p.X
	id, err := restoredBy(ctx, hc.Conn)
	if err != nil || id == x.ID {
		return nil, err
	}
	cs := engine.NewChanges(hc, restorePhase)
	if _, err := cs.File(ctx, transport.File{Path: x.remoteSnapshot(), Mode: 0o600, Source: x.Snapshot, SHA256: x.SHA256}, engine.FileOpts{Secret: true}); err != nil {
		return nil, err
	}
	c, err := x.step(hc, "prepare", fmt.Sprintf("restore %s into %s.restore-%s (etcdutl checks it; etcd keeps running)",
		filepath.Base(x.Snapshot), hc.Run.Cluster.Spec.Etcd.DataDir, x.ID))
	if err != nil {
		return nil, err
	}
	cs.Add(c)
	return cs.List, nil
}

// Check records the restore in the journal: from here, a run killed at any
// step is finished by running the restore again with the same snapshot.
func (p *EtcdRestoreCheck) Check(_ context.Context, r *engine.Run) error {
	x := p.X
	if x.superseded != "" {
		if err := r.Journal.Record("", restorePhase, state.Done, restoreKey, "superseded "+x.superseded); err != nil {
			return err
		}
	}
	if x.Resumed {
		return nil
	}
	return r.Journal.Record("", restorePhase, state.Intent, restoreKey, x.ID+" "+x.SHA256+" "+x.Snapshot)
}

// EtcdRestoreStopAPI stops the control plane on every master and waits
// until none runs, so nothing writes to etcd while it is replaced.
type EtcdRestoreStopAPI struct{ X *EtcdRestoration }

func (*EtcdRestoreStopAPI) Name() string { return "etcd-restore-stop-api" }
func (*EtcdRestoreStopAPI) Title() string {
	return "etcd restore: every control plane stopped (manifests aside) until none runs"
}
func (*EtcdRestoreStopAPI) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.Masters() }

func (p *EtcdRestoreStopAPI) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	// Once every member runs the restored data, the API servers may run.
	if done, err := p.X.allRestored(ctx, hc.Run); err != nil || done {
		return nil, err
	}
	c, err := p.X.step(hc, "pause", "stop kube-apiserver, kube-controller-manager and kube-scheduler (manifests to "+templates.EtcdRestorePaused+") and wait until none runs")
	if err != nil {
		return nil, err
	}
	return []*engine.Change{c}, nil
}

// EtcdRestoreSwap stops etcd on every member, moves its data dir aside and
// puts the restored one in its place.
type EtcdRestoreSwap struct{ X *EtcdRestoration }

func (*EtcdRestoreSwap) Name() string { return "etcd-restore-swap" }
func (*EtcdRestoreSwap) Title() string {
	return "etcd restore: every member stopped, its data moved aside, the restored data in its place"
}
func (*EtcdRestoreSwap) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (p *EtcdRestoreSwap) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	x := p.X
	if id, err := restoredBy(ctx, hc.Conn); err != nil || id == x.ID {
		return nil, err
	}
	dir := hc.Run.Cluster.Spec.Etcd.DataDir
	c, err := x.step(hc, "swap", fmt.Sprintf("stop etcd, move %s aside to %s.before-restore-%s, put the restored data in its place", dir, dir, x.ID))
	if err != nil {
		return nil, err
	}
	return []*engine.Change{c}, nil
}

// EtcdRestoreStart starts every member together (none has a quorum
// alone) and waits until all are healthy and agree on hashkv.
type EtcdRestoreStart struct{ X *EtcdRestoration }

func (*EtcdRestoreStart) Name() string { return "etcd-restore-start" }
func (*EtcdRestoreStart) Title() string {
	return "etcd restore: members started together; healthy, with the same hashkv"
}
func (*EtcdRestoreStart) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (p *EtcdRestoreStart) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	st, err := engine.GetUnitState(ctx, hc.Conn, "etcd")
	if err != nil {
		return nil, err
	}
	// A member not yet swapped (in a dry run: every member) will be stopped.
	if id, err := restoredBy(ctx, hc.Conn); err != nil || (st.Active && id == p.X.ID) {
		return nil, err
	}
	return []*engine.Change{unitCommand(hc, restorePhase, "start etcd (the members start together)", "start:etcd", "systemctl start --no-block etcd")}, nil
}

func (p *EtcdRestoreStart) Check(ctx context.Context, r *engine.Run) error {
	// Health over TLS, the member list against the inventory, and the
	// state dir's record of the members (their IDs are new).
	if err := (&Etcd{}).Check(ctx, r); err != nil {
		return err
	}
	return waitSameHashKV(ctx, r, time.Minute)
}

// waitSameHashKV waits until every member reports the same hash of its
// key space up to a revision all of them have applied (the API may write
// meanwhile, when a re-run finishes a restore).
func waitSameHashKV(ctx context.Context, r *engine.Run, timeout time.Duration) error {
	members := r.Cluster.EtcdMembers()
	var last string
	err := engine.Poll(ctx, timeout, 2*time.Second, func(ctx context.Context) (bool, error) {
		var sts []etcdStatus
		out, err := Etcdctl(ctx, r, members[0], "endpoint status -w json")
		if err == nil {
			err = json.Unmarshal([]byte(out), &sts)
		}
		if err != nil || len(sts) != len(members) {
			last = fmt.Sprintf("endpoint status: %v %q", err, strings.TrimSpace(out))
			return false, nil
		}
		rev := sts[0].Status.Header.Revision
		for _, s := range sts {
			rev = min(rev, s.Status.Header.Revision)
		}
		out, err = Etcdctl(ctx, r, members[0], fmt.Sprintf("endpoint hashkv --rev=%d -w json", rev))
		var hs []struct {
			Endpoint string `json:"Endpoint"`
			HashKV   struct {
				Hash uint32 `json:"hash"`
			} `json:"HashKV"`
		}
		if err == nil {
			err = json.Unmarshal([]byte(out), &hs)
		}
		if err != nil || len(hs) != len(members) {
			last = fmt.Sprintf("hashkv: %v %q", err, strings.TrimSpace(out))
			return false, nil
		}
		var seen []string
		same := true
		for _, h := range hs {
			seen = append(seen, fmt.Sprintf("%s %d", h.Endpoint, h.HashKV.Hash))
			same = same && h.HashKV.Hash == hs[0].HashKV.Hash
		}
		last = fmt.Sprintf("at revision %d: %s", rev, strings.Join(seen, ", "))
		return same, nil
	})
	if errors.Is(err, engine.ErrTimeout) {
		return engine.Errorf("", restorePhase, "compare the members with etcdctl endpoint hashkv; restore again if they differ",
			"the members' hashkv differ after %s: %s", timeout, last)
	}
	if err == nil {
		r.Events.Infof(restorePhase, "", "hashkv identical on %d member(s) %s", len(members), last)
	}
	return err
}

// EtcdRestoreStartAPI puts every control plane back and waits for /readyz
// on each master.
type EtcdRestoreStartAPI struct{ X *EtcdRestoration }

func (*EtcdRestoreStartAPI) Name() string { return "etcd-restore-start-api" }
func (*EtcdRestoreStartAPI) Title() string {
	return "etcd restore: every control plane back (new controller-manager and scheduler); /readyz on each master"
}
func (*EtcdRestoreStartAPI) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.Masters() }

// Plan: the resume step is idempotent, and a dry run, planned before the
// pause, must show it.
func (p *EtcdRestoreStartAPI) Plan(_ context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	c, err := p.X.step(hc, "resume", "start the control plane again (manifests back from "+templates.EtcdRestorePaused+")")
	if err != nil {
		return nil, err
	}
	return []*engine.Change{c}, nil
}

func (p *EtcdRestoreStartAPI) Check(ctx context.Context, r *engine.Run) error {
	return engine.OnHosts(ctx, r, p.Name(), r.Cluster.Masters(), func(ctx context.Context, hc *engine.HostCtx) error {
		return WaitAPIServerReady(ctx, hc, "https://127.0.0.1:6443", 5*time.Minute)
	})
}

// EtcdRestoreKubelets restarts every kubelet, so none keeps state newer
// than the snapshot, and waits for every node Ready; then the restore is
// done: the members' copies of the snapshot go and the journal closes it.
type EtcdRestoreKubelets struct{ X *EtcdRestoration }

func (*EtcdRestoreKubelets) Name() string { return "etcd-restore-kubelets" }
func (*EtcdRestoreKubelets) Title() string {
	return "etcd restore: every kubelet restarted; every node Ready"
}
func (*EtcdRestoreKubelets) Hosts(r *engine.Run) []*v1alpha1.Host {
	return unionHosts(r.Cluster.Nodes(), r.Cluster.EtcdMembers())
}

func (p *EtcdRestoreKubelets) Plan(_ context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	var cs []*engine.Change
	if hc.Host.HasRole(v1alpha1.RoleMaster) || hc.Host.HasRole(v1alpha1.RoleWorker) {
		cs = append(cs, unitCommand(hc, restorePhase, "restart kubelet (it relists from the restored API)", "restart:kubelet", "systemctl restart kubelet"))
	}
	if slices.Contains(hc.Run.Cluster.EtcdMembers(), hc.Host) {
		cs = append(cs, engine.CommandChange(hc, restorePhase, "remove the snapshot's copy "+p.X.remoteSnapshot(), "rm -f "+transport.ShellQuote(p.X.remoteSnapshot())))
	}
	return cs, nil
}

func (p *EtcdRestoreKubelets) Check(ctx context.Context, r *engine.Run) error {
	if err := WaitNodesReady(ctx, r, len(r.Cluster.Nodes()), 5*time.Minute); err != nil {
		return err
	}
	r.Events.Infof(restorePhase, "", "restored from %s; each member's earlier data is in %s.before-restore-%s", p.X.Snapshot, r.Cluster.Spec.Etcd.DataDir, p.X.ID)
	return r.Journal.Record("", restorePhase, state.Done, restoreKey, "restored "+p.X.ID)
}

// unionHosts is a's hosts then b's that a lacks.
func unionHosts(a, b []*v1alpha1.Host) []*v1alpha1.Host {
	out := slices.Clone(a)
	for _, h := range b {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// MemberStates says, after a failed restore, where every member stands:
// whether it runs the restored data, whether etcd is active, and the data
// dirs moved aside, from which to go back by hand.
func (x *EtcdRestoration) MemberStates(ctx context.Context, r *engine.Run) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	members := r.Cluster.EtcdMembers()
	out := make([]string, len(members))
	dir := r.Cluster.Spec.Etcd.DataDir
	_ = engine.ForEachHost(ctx, r, members, func(ctx context.Context, m *v1alpha1.Host) error {
		i := slices.Index(members, m)
		conn, err := r.Connect(ctx, m)
		if err != nil {
			out[i] = m.Name + ": did not answer: " + err.Error()
			return nil
		}
		cmd := fmt.Sprintf("cat %s 2>/dev/null || echo none; systemctl is-active etcd; ls -d %s.before-restore-* 2>/dev/null; true",
			templates.EtcdRestoreMarker, transport.ShellQuote(dir))
		res, err := conn.Run(ctx, transport.Cmd{Command: cmd, ReadOnly: true, Timeout: 20 * time.Second})
		if err != nil {
			out[i] = m.Name + ": " + err.Error()
			return nil
		}
		f := strings.Fields(string(res.Stdout))
		for len(f) < 2 {
			f = append(f, "?")
		}
		data := "its earlier data (not swapped yet)"
		if f[0] == x.ID {
			data = "the restored data"
		}
		aside := "none"
		if len(f) > 2 {
			aside = strings.Join(f[2:], ", ")
		}
		out[i] = fmt.Sprintf("%s: %s, etcd %s; moved aside: %s", m.Name, data, f[1], aside)
		return nil
	})
	return out
}
