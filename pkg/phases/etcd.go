package phases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Etcd runs etcd as a systemd unit on every member (the masters when
// stacked, the etcd hosts when external): binaries from the artifacts
// (sha256 checked on the bastion and again on the host), TLS for peers and
// clients from the state dir's PKI, and a health gate over TLS.
type Etcd struct {
	// fresh: no member was running when planned, so members start together
	// without waiting on each other (a lone member cannot become ready).
	fresh bool
}

const (
	etcdUnitPath      = "/etc/systemd/system/etcd.service"
	etcdHealthCert    = templates.EtcdPKIDir + "/healthcheck-client.crt"
	etcdHealthKey     = templates.EtcdPKIDir + "/healthcheck-client.key"
	etcdHealthTimeout = 90 * time.Second
)

func (*Etcd) Name() string                  { return "etcd" }
func (*Etcd) Title() string                 { return "etcd: TLS members as systemd units, health-gated" }
func (*Etcd) Hosts(r *Run) []*v1alpha1.Host { return r.Cluster.EtcdMembers() }

func (e *Etcd) Prepare(ctx context.Context, r *Run) error {
	e.fresh = true
	return nil
}

func etcdInput(r *Run, name string) templates.EtcdInput {
	in := templates.EtcdInput{Name: name, ClusterState: "new", ClusterToken: "k4t-" + r.Cluster.Metadata.Name,
		DataDir: r.Cluster.Spec.Etcd.DataDir}
	for _, m := range r.Cluster.EtcdMembers() {
		in.Members = append(in.Members, templates.EtcdMember{Name: m.Name, Address: m.InternalAddress})
	}
	return in
}

func (e *Etcd) Plan(ctx context.Context, hc *HostCtx) ([]*Change, error) {
	r := hc.Run
	cs := NewChanges(hc, e.Name())
	binChanged := false
	for _, name := range []string{"etcd", "etcdctl", "etcdutl"} {
		f, err := artifactFile(ctx, r, name)
		if err != nil {
			return nil, err
		}
		ch, err := cs.File(ctx, f, FileOpts{Binary: true})
		if err != nil {
			return nil, err
		}
		binChanged = binChanged || (ch && name == "etcd")
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
	certChanged := false
	for _, p := range pki {
		f, o, err := pkiFile(r, p.rel, p.remote)
		if err != nil {
			return nil, err
		}
		ch, err := cs.File(ctx, f, o)
		if err != nil {
			return nil, err
		}
		certChanged = certChanged || ch
	}
	in := etcdInput(r, hc.Name())
	env, err := templates.EtcdEnv(in)
	if err != nil {
		return nil, err
	}
	unit, err := templates.EtcdUnit(in)
	if err != nil {
		return nil, err
	}
	envChanged, err := cs.File(ctx, transport.File{Path: templates.EtcdEnvPath, Mode: 0o644, Content: env}, FileOpts{})
	if err != nil {
		return nil, err
	}
	unitChanged, err := cs.File(ctx, transport.File{Path: etcdUnitPath, Mode: 0o644, Content: unit}, FileOpts{})
	if err != nil {
		return nil, err
	}
	st, err := GetUnitState(ctx, hc.Conn, "etcd")
	if err != nil {
		return nil, err
	}
	if st.Active {
		e.fresh = false
	}
	units, err := UnitChanges(ctx, hc, Unit{Name: "etcd", UnitFileChanged: unitChanged,
		ConfigChanged: envChanged || certChanged || binChanged, NoBlock: true})
	if err != nil {
		return nil, err
	}
	cs.Add(units...)
	return cs.List, nil
}

// artifactFile resolves an artifact to a verified local file to put at its
// install path; Put's checksum then skips hosts that already have it.
func artifactFile(ctx context.Context, r *Run, name string) (transport.File, error) {
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

// Apply starts members together on a fresh cluster; on a running cluster
// it changes one member at a time and waits for the cluster to be healthy
// before the next, so quorum is never lost.
func (e *Etcd) Apply(ctx context.Context, r *Run, plans []*HostPlan) error {
	if e.fresh {
		errs := make(chan error, len(plans))
		for _, pl := range plans {
			go func() { errs <- ApplyChanges(ctx, r, pl) }()
		}
		var all []error
		for range plans {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}
	for _, pl := range plans {
		if len(pl.Changes) == 0 {
			continue
		}
		if err := ApplyChanges(ctx, r, pl); err != nil {
			return err
		}
		if err := e.waitHealthy(ctx, r, etcdHealthTimeout); err != nil {
			return fmt.Errorf("after changing %s: %w", pl.Name(), err)
		}
	}
	return nil
}

// Check gates the phase on every member being healthy over TLS and the
// member list matching the inventory.
func (e *Etcd) Check(ctx context.Context, r *Run) error {
	if err := e.waitHealthy(ctx, r, etcdHealthTimeout); err != nil {
		return err
	}
	members, err := EtcdMemberNames(ctx, r)
	if err != nil {
		return err
	}
	var want []string
	for _, h := range r.Cluster.EtcdMembers() {
		want = append(want, h.Name)
	}
	slices.Sort(want)
	if !slices.Equal(members, want) {
		return Errorf("", "etcd", "remove stale members with 'etcdctl member remove' (k4t delete node does this)", "member list %v does not match the inventory %v", members, want)
	}
	r.Events.Infof(e.Name(), "", "%d member(s) healthy over TLS: %s", len(members), strings.Join(members, ", "))
	return nil
}

// Etcdctl runs etcdctl on host h against every member, with the
// healthcheck client certificate.
func Etcdctl(ctx context.Context, r *Run, h *v1alpha1.Host, args string) (string, error) {
	conn, err := r.Connect(ctx, h)
	if err != nil {
		return "", err
	}
	var eps []string
	for _, m := range r.Cluster.EtcdMembers() {
		eps = append(eps, "https://"+m.InternalAddress+":2379")
	}
	cmd := fmt.Sprintf("ETCDCTL_API=3 etcdctl --endpoints=%s --cacert=%s --cert=%s --key=%s --command-timeout=5s %s",
		strings.Join(eps, ","), templates.EtcdCAFile, etcdHealthCert, etcdHealthKey, args)
	res, err := conn.Run(ctx, transport.Cmd{Command: cmd, Timeout: 30 * time.Second})
	if err != nil {
		return "", err
	}
	return string(res.Stdout), nil
}

// EtcdMemberNames lists the cluster's members, sorted.
func EtcdMemberNames(ctx context.Context, r *Run) ([]string, error) {
	out, err := Etcdctl(ctx, r, r.Cluster.EtcdMembers()[0], "member list -w simple")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, ", ")
		if len(f) >= 3 {
			names = append(names, f[2])
		}
	}
	slices.Sort(names)
	return names, nil
}

func (e *Etcd) waitHealthy(ctx context.Context, r *Run, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	members := r.Cluster.EtcdMembers()
	for {
		out, err := Etcdctl(ctx, r, members[0], "endpoint health -w simple")
		healthy := err == nil && strings.Count(out, "is healthy") == len(members)
		if healthy {
			return nil
		}
		if time.Now().After(deadline) {
			last := strings.TrimSpace(out)
			if err != nil {
				last = err.Error()
			}
			return Errorf(members[0].Name, "etcd", "check 'journalctl -u etcd' on each member",
				"members did not all become healthy in %s (last: %s)", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
