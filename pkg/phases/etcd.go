package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Etcd runs etcd as a systemd unit on every member (the masters when
// stacked, the etcd hosts when external): binaries from the artifacts
// (sha256 checked on the bastion and again on the host), TLS for peers and
// clients from the state dir's PKI, and a health gate over TLS.
type Etcd struct {
	// cluster is read in Prepare and only read afterwards.
	cluster *etcdCluster
}

const (
	etcdUnitPath      = "/etc/systemd/system/etcd.service"
	etcdHealthCert    = templates.EtcdHealthCert
	etcdHealthKey     = templates.EtcdHealthKey
	etcdHealthTimeout = 90 * time.Second
)

func (*Etcd) Name() string                         { return "etcd" }
func (*Etcd) Title() string                        { return "etcd: TLS members as systemd units, health-gated" }
func (*Etcd) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

// Prepare reads every member's state (read-only): whether the cluster runs
// with quorum, and which members lost their data.
func (e *Etcd) Prepare(ctx context.Context, r *engine.Run) error {
	c, err := probeEtcd(ctx, r)
	if err != nil {
		return err
	}
	e.cluster = c
	if lost := c.lost(); c.healthy && len(lost) > 0 {
		slices.Sort(lost)
		r.Events.Infof(e.Name(), "", "member(s) without data: %s; the cluster has quorum, so they are replaced one at a time", strings.Join(lost, ", "))
	}
	return nil
}

func etcdInput(r *engine.Run, name, state string) templates.EtcdInput {
	in := templates.EtcdInput{Name: name, ClusterState: state, ClusterToken: "k4t-" + r.Cluster.Metadata.Name,
		DataDir: r.Cluster.Spec.Etcd.DataDir}
	for _, m := range r.Cluster.EtcdMembers() {
		in.Members = append(in.Members, templates.EtcdMember{Name: m.Name, Address: m.InternalAddress})
	}
	return in
}

func (e *Etcd) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	cs := engine.NewChanges(hc, e.Name())
	repair, err := e.cluster.repairChanges(hc, e.Name())
	if err != nil {
		return nil, err
	}
	// Every file of the member, planned with one round trip: the binaries
	// (etcd's own first), its certificates, then its env and unit.
	var files []engine.PlannedFile
	for _, name := range []string{"etcd", "etcdctl", "etcdutl"} {
		f, err := artifactFile(ctx, r, name)
		if err != nil {
			return nil, err
		}
		files = append(files, engine.PlannedFile{File: f, Opts: engine.FileOpts{Binary: true}})
	}
	pki := []struct{ rel, remote string }{
		{certs.EtcdCA + ".crt", templates.EtcdCAFile},
		{certs.EtcdServer(hc.Name()) + ".crt", templates.EtcdServerCert},
		{certs.EtcdServer(hc.Name()) + ".key", templates.EtcdServerKey},
		{certs.EtcdPeer(hc.Name()) + ".crt", templates.EtcdPeerCert},
		{certs.EtcdPeer(hc.Name()) + ".key", templates.EtcdPeerKey},
		{certs.EtcdHealthcheck + ".crt", etcdHealthCert},
		{certs.EtcdHealthcheck + ".key", etcdHealthKey},
	}
	for _, p := range pki {
		f, o, err := pkiFile(r, p.rel, p.remote)
		if err != nil {
			return nil, err
		}
		files = append(files, engine.PlannedFile{File: f, Opts: o})
	}
	in := etcdInput(r, hc.Name(), e.cluster.clusterState(hc.Name()))
	in.InitialCluster = e.cluster.initialCluster(hc.Name())
	env, err := templates.EtcdEnv(in)
	if err != nil {
		return nil, err
	}
	unit, err := templates.EtcdUnit(in)
	if err != nil {
		return nil, err
	}
	files = append(files,
		engine.PlannedFile{File: transport.File{Path: templates.EtcdEnvPath, Mode: 0o644, Content: env}},
		engine.PlannedFile{File: transport.File{Path: etcdUnitPath, Mode: 0o644, Content: unit}})
	fileChanges, err := engine.FileChanges(ctx, hc, e.Name(), files...)
	if err != nil {
		return nil, err
	}
	nBin, nPKI := 3, len(pki)
	binChanged := fileChanges[0] != nil
	certChanged := false
	for _, c := range fileChanges[nBin : nBin+nPKI] {
		certChanged = certChanged || c != nil
	}
	envChanged, unitChanged := fileChanges[nBin+nPKI] != nil, fileChanges[nBin+nPKI+1] != nil
	// Member changes run etcdctl on this host, with the binaries and the
	// client certificate above (a replaced host may have neither yet).
	cs.Add(fileChanges[:nBin+nPKI]...)
	cs.Add(repair...)
	cs.Add(fileChanges[nBin+nPKI:]...)
	units, err := engine.UnitChanges(ctx, hc, engine.Unit{Name: "etcd", UnitFileChanged: unitChanged,
		ConfigChanged: envChanged || certChanged || binChanged || len(repair) > 0, NoBlock: true})
	if err != nil {
		return nil, err
	}
	cs.Add(units...)
	if e.cluster.needsPromotion(hc, repair) {
		cs.Add(promoteChange(hc, e.Name()))
	}
	return cs.List, nil
}

// artifactFile resolves an artifact to a verified local file to put at its
// install path; Put's checksum then skips hosts that already have it.
func artifactFile(ctx context.Context, r *engine.Run, name string) (transport.File, error) {
	if r.Options.Artifacts == nil {
		return transport.File{}, fmt.Errorf("no artifact source configured")
	}
	a, err := r.Options.Artifacts.Manifest().Get(name)
	if err != nil {
		return transport.File{}, err
	}
	path, sum, err := r.Options.Artifacts.Resolve(ctx, name)
	if err != nil {
		return transport.File{}, err
	}
	return transport.File{Path: a.Install, Mode: a.FileMode(), Source: path, SHA256: sum}, nil
}

// Apply starts members together while no quorum runs (a new cluster, or one
// whose first start was interrupted); on a running cluster it changes one
// member at a time and waits for that member to be healthy (which needs
// quorum) before the next, so quorum is never lost.
func (e *Etcd) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	if e.cluster.bootstrap() {
		// Starts do not block (--no-block), so a bound on hosts at once
		// cannot leave a member waiting for one not yet started.
		return engine.ForEachHost(ctx, r, plans, func(ctx context.Context, pl *engine.HostPlan) error {
			return engine.ApplyChanges(ctx, r, pl)
		})
	}
	for _, pl := range plans {
		if len(pl.Changes) == 0 {
			continue
		}
		if err := engine.ApplyChanges(ctx, r, pl); err != nil {
			return err
		}
		if err := waitMemberHealthy(ctx, r, pl.Host, etcdHealthTimeout); err != nil {
			return fmt.Errorf("after changing %s: %w", pl.Name(), err)
		}
	}
	return nil
}

// Check gates the phase on every member being healthy over TLS and the
// member list matching the inventory, and records in the state dir that the
// cluster formed (with its member IDs).
func (e *Etcd) Check(ctx context.Context, r *engine.Run) error {
	if err := WaitEtcdHealthy(ctx, r, etcdHealthTimeout); err != nil {
		return err
	}
	listed, err := etcdMembers(ctx, r, r.Cluster.EtcdMembers()[0])
	if err != nil {
		return err
	}
	var members, want []string
	var record strings.Builder
	for _, m := range listed {
		members = append(members, m.Name)
		fmt.Fprintf(&record, "%s %x\n", m.Name, m.ID)
	}
	for _, h := range r.Cluster.EtcdMembers() {
		want = append(want, h.Name)
	}
	slices.Sort(members)
	slices.Sort(want)
	if !slices.Equal(members, want) {
		return engine.Errorf("", "etcd", "remove stale members with 'etcdctl member remove' (k4t delete node does this)", "member list %v does not match the inventory %v", members, want)
	}
	if r.State != nil {
		if err := r.State.WriteFile(formedMarker, []byte(record.String()), 0o600); err != nil {
			return fmt.Errorf("recording the etcd members in the state dir: %w", err)
		}
	}
	r.Events.Infof(e.Name(), "", "%d member(s) healthy over TLS: %s", len(members), strings.Join(members, ", "))
	return nil
}

// Etcdctl runs etcdctl on host h against every member, with the
// healthcheck client certificate.
func Etcdctl(ctx context.Context, r *engine.Run, h *v1alpha1.Host, args string) (string, error) {
	conn, err := r.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	res, err := conn.Run(ctx, transport.Cmd{Command: etcdctlCmd(r.Cluster.EtcdMembers(), args), Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return "", err
	}
	return string(res.Stdout), nil
}

// etcdMembers is `etcdctl member list` run on host from, sorted by name.
func etcdMembers(ctx context.Context, r *engine.Run, from *v1alpha1.Host) ([]etcdListed, error) {
	out, err := Etcdctl(ctx, r, from, "member list -w json")
	if err != nil {
		return nil, engine.WrapPhase("etcd", from.Name, fmt.Errorf("listing members: %w", err))
	}
	var l struct {
		Members []etcdListed `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, engine.WrapPhase("etcd", from.Name, fmt.Errorf("reading the member list: %w", err))
	}
	slices.SortFunc(l.Members, func(a, b etcdListed) int { return strings.Compare(a.Name, b.Name) })
	return l.Members, nil
}
