package phases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// etcdCluster is what the etcd phase learnt of the members before planning:
// read once in Prepare, read-only while hosts are planned in parallel.
type etcdCluster struct {
	members map[string]etcdMemberState
	// healthy: a quorum of members answered a linearizable health check.
	healthy bool
	// listed is the member list, read only when healthy.
	listed []etcdListed
	// formed: the state dir records that this cluster formed once, so a
	// member without data is a member that lost it, not one never started.
	formed bool
}

// etcdMemberState is one member host as the probe found it.
type etcdMemberState struct {
	Active  bool   // the unit is active or (re)starting
	HasData bool   // the data dir holds member/wal
	DirUsed bool   // the data dir exists and is not empty
	State   string // ETCD_INITIAL_CLUSTER_STATE in the host's env file
	Initial string // ETCD_INITIAL_CLUSTER in the host's env file
}

// etcdListed is one entry of `etcdctl member list`.
type etcdListed struct {
	ID        uint64   `json:"ID"`
	Name      string   `json:"name"`
	PeerURLs  []string `json:"peerURLs"`
	IsLearner bool     `json:"isLearner"`
}

// started: the member has run and published its name; an entry added by
// `member add` (or a static member never started) has none.
func (m etcdListed) started() bool { return m.Name != "" }

func (c *etcdCluster) quorum() int { return len(c.members)/2 + 1 }

// lost lists the members whose data is gone (or was never written).
func (c *etcdCluster) lost() []string {
	var out []string
	for name, m := range c.members {
		if !m.HasData {
			out = append(out, name)
		}
	}
	return out
}

// bootstrap: no quorum is running, so members start together without
// waiting on each other (a lone member of a new cluster cannot be healthy).
func (c *etcdCluster) bootstrap() bool { return !c.healthy }

// formedMarker is the state-dir file written once the etcd cluster first
// passed its health check: the member names and IDs, one per line.
const formedMarker = "etcd/members"

// probeEtcd reads every member host (unit, data dir, env file) and, when
// some member runs, the cluster's health and member list. Read-only.
func probeEtcd(ctx context.Context, r *engine.Run) (*etcdCluster, error) {
	hosts := r.Cluster.EtcdMembers()
	c := &etcdCluster{members: map[string]etcdMemberState{}}
	if r.State != nil {
		if _, err := os.Stat(r.State.Path(formedMarker)); err == nil {
			c.formed = true
		}
	}
	var mu sync.Mutex
	err := engine.ForEachHost(ctx, r, hosts, func(ctx context.Context, h *v1alpha1.Host) error {
		st, err := probeMember(ctx, r, h)
		if err != nil {
			return engine.WrapPhase("etcd", h.Name, err)
		}
		mu.Lock()
		c.members[h.Name] = st
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	var from *v1alpha1.Host
	for _, h := range hosts {
		if c.members[h.Name].Active && c.members[h.Name].HasData {
			from = h
			break
		}
	}
	if from == nil {
		return c, nil
	}
	healthy, err := etcdHealthyCount(ctx, r, from, hosts)
	if err != nil {
		return nil, err
	}
	c.healthy = healthy >= c.quorum()
	if c.healthy {
		if c.listed, err = etcdMembers(ctx, r, from); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func probeMember(ctx context.Context, r *engine.Run, h *v1alpha1.Host) (etcdMemberState, error) {
	conn, err := r.Connect(ctx, h)
	if err != nil {
		return etcdMemberState{}, err
	}
	dir := transport.ShellQuote(r.Cluster.Spec.Etcd.DataDir)
	cmd := fmt.Sprintf(`echo active=$(systemctl is-active etcd); [ -d %[1]s/member/wal ] && echo data=yes; [ -n "$(ls -A %[1]s 2>/dev/null)" ] && echo used=yes; sed -n -e 's/^ETCD_INITIAL_CLUSTER_STATE=/state=/p' -e 's/^ETCD_INITIAL_CLUSTER=/initial=/p' %[2]s 2>/dev/null; true`,
		dir, templates.EtcdEnvPath)
	res, err := conn.Run(ctx, transport.Cmd{Command: cmd, Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return etcdMemberState{}, fmt.Errorf("reading etcd's state: %w", err)
	}
	var st etcdMemberState
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "active":
			st.Active = v == "active" || v == "activating" || v == "reloading"
		case "data":
			st.HasData = true
		case "used":
			st.DirUsed = true
		case "state":
			st.State = v
		case "initial":
			st.Initial = v
		}
	}
	return st, nil
}

// etcdHealthyCount asks every member's endpoint, from host from, for a
// linearizable health check: a member counts only when a quorum stands
// behind it.
func etcdHealthyCount(ctx context.Context, r *engine.Run, from *v1alpha1.Host, members []*v1alpha1.Host) (int, error) {
	conn, err := r.Connect(ctx, from)
	if err != nil {
		return 0, err
	}
	res, err := conn.Run(ctx, transport.Cmd{Command: etcdctlCmd(members, "endpoint health -w json"), Timeout: 30 * time.Second, ReadOnly: true})
	var health []struct {
		Health bool `json:"health"`
	}
	if jerr := json.Unmarshal(res.Stdout, &health); jerr != nil {
		if err != nil {
			return 0, engine.WrapPhase("etcd", from.Name, fmt.Errorf("etcd health: %w", err))
		}
		return 0, engine.WrapPhase("etcd", from.Name, fmt.Errorf("reading etcd health: %w", jerr))
	}
	n := 0
	for _, h := range health {
		if h.Health {
			n++
		}
	}
	return n, nil
}

// etcdctlCmd is etcdctl against members with the healthcheck client cert.
func etcdctlCmd(members []*v1alpha1.Host, args string) string {
	var eps []string
	for _, m := range members {
		eps = append(eps, etcdClientURL(m))
	}
	return fmt.Sprintf("ETCDCTL_API=3 etcdctl --endpoints=%s --cacert=%s --cert=%s --key=%s --command-timeout=5s %s",
		strings.Join(eps, ","), templates.EtcdCAFile, etcdHealthCert, etcdHealthKey, args)
}

func etcdClientURL(h *v1alpha1.Host) string {
	return "https://" + net.JoinHostPort(h.InternalAddress, "2379")
}
func etcdPeerURL(h *v1alpha1.Host) string {
	return "https://" + net.JoinHostPort(h.InternalAddress, "2380")
}

// clusterState is the ETCD_INITIAL_CLUSTER_STATE this member's env file
// gets. etcd reads it only while its data dir is empty: "new" bootstraps
// with the others, "existing" joins the running cluster (after `member
// add`). Once a member has data the host's value is kept, so that a value
// etcd no longer reads never restarts it.
func (c *etcdCluster) clusterState(name string) string {
	m := c.members[name]
	switch {
	case m.HasData && m.State != "":
		return m.State
	case !m.HasData && c.healthy:
		return "existing"
	}
	return "new"
}

// initialCluster is the ETCD_INITIAL_CLUSTER this member's env file gets
// ("" for the inventory's members). Like the state, etcd reads it only while
// the data dir is empty: once a member has data the host's value is kept,
// so adding or removing another member does not restart this one.
func (c *etcdCluster) initialCluster(name string) string {
	if m := c.members[name]; m.HasData && m.State != "" {
		return m.Initial
	}
	return ""
}

// repairChanges brings back a member whose data is gone, following etcd's
// guide for replacing a failed member: stop it, move what is left of its
// data dir aside (never delete it), remove it from the cluster and add it
// again; it then starts with state "existing" and catches up from the
// others. Each step is re-derived from the hosts, so a run killed between
// two steps is finished by the next. The commands run on the member itself,
// against the other members' endpoints.
func (c *etcdCluster) repairChanges(hc *engine.HostCtx, phase string) ([]*engine.Change, error) {
	m := c.members[hc.Name()]
	if m.HasData {
		return nil, nil
	}
	if !c.healthy {
		if !c.formed {
			return nil, nil // a new cluster: every member starts together
		}
		return nil, engine.Errorf(hc.Name(), phase, "restore etcd from a snapshot ('etcdctl snapshot save' on a member with data, then etcdutl snapshot restore on every member), or start the members that still have data first",
			"member %s has no data and the other members have no quorum (%d of %d needed): a member can be replaced only while the rest keep quorum", hc.Name(), c.quorum(), len(c.members))
	}
	var self *v1alpha1.Host
	var others []*v1alpha1.Host
	for _, h := range hc.Run.Cluster.EtcdMembers() {
		if h.Name == hc.Name() {
			self = h
		} else {
			others = append(others, h)
		}
	}
	peer := etcdPeerURL(self)
	var entry *etcdListed
	for i, l := range c.listed {
		for _, u := range l.PeerURLs {
			if u == peer {
				entry = &c.listed[i]
			}
		}
	}
	if entry != nil && !entry.started() && !m.DirUsed {
		return nil, nil // added (or never started): it only has to start
	}
	var out []*engine.Change
	if m.Active {
		out = append(out, unitCommand(hc, phase, "stop etcd (its data is gone; it is replaced below)", "stop:etcd", "systemctl stop etcd"))
	}
	if m.DirUsed {
		dir := hc.Run.Cluster.Spec.Etcd.DataDir
		aside := fmt.Sprintf("%s.k4t-%s", dir, hc.Run.Now().UTC().Format("20060102T150405Z"))
		out = append(out, engine.CommandChange(hc, phase, fmt.Sprintf("move %s aside to %s (what is left of a member without a WAL)", dir, aside),
			fmt.Sprintf("mv %s %s", transport.ShellQuote(dir), transport.ShellQuote(aside))))
	}
	if entry != nil && entry.started() {
		id := strconv.FormatUint(entry.ID, 16)
		out = append(out, reconfigChange(hc, phase, fmt.Sprintf("etcdctl member remove %s (%s lost its data; the other members keep quorum)", id, hc.Name()),
			etcdctlCmd(others, "member remove "+id)))
		entry = nil
	}
	if entry == nil {
		// As a learner: it does not count for quorum until it has caught
		// up and is promoted (promoteChange, after its start).
		out = append(out, reconfigChange(hc, phase, fmt.Sprintf("etcdctl member add %s --peer-urls=%s --learner", hc.Name(), peer),
			etcdctlCmd(others, fmt.Sprintf("member add %s --peer-urls=%s --learner", hc.Name(), peer))))
	}
	return out, nil
}

// reconfigChange runs an etcd membership change (member add or remove).
// etcd refuses one ("unhealthy cluster") until the member asked has been
// connected to every voting peer for a few seconds, e.g. after a restart
// or another membership change: it is asked again, every 2s, meanwhile.
func reconfigChange(hc *engine.HostCtx, phase, desc, cmd string) *engine.Change {
	c := engine.CommandChange(hc, phase, desc, cmd)
	c.Apply = func(ctx context.Context, h transport.Host) error {
		return etcdReconfig(ctx, h, cmd)
	}
	return c
}

func etcdReconfig(ctx context.Context, h transport.Host, cmd string) error {
	var last error
	err := engine.Poll(ctx, etcdHealthTimeout, 2*time.Second, func(ctx context.Context) (bool, error) {
		_, last = h.Run(ctx, transport.Cmd{Command: cmd, Timeout: 30 * time.Second})
		if last != nil && strings.Contains(last.Error(), "unhealthy cluster") {
			return false, nil
		}
		return true, last
	})
	if errors.Is(err, engine.ErrTimeout) {
		return fmt.Errorf("etcd kept refusing for %s: %w", etcdHealthTimeout, last)
	}
	return err
}

// needsPromotion: hc's member joins (or joined) as a learner and is not
// promoted yet.
func (c *etcdCluster) needsPromotion(hc *engine.HostCtx, repair []*engine.Change) bool {
	for _, ch := range repair {
		if strings.Contains(ch.Desc, "--learner") {
			return true
		}
	}
	peer := etcdPeerURL(hc.Host)
	return slices.ContainsFunc(c.listed, func(l etcdListed) bool { return l.IsLearner && slices.Contains(l.PeerURLs, peer) })
}

// etcdOthers lists the etcd members other than the host named name.
func etcdOthers(r *engine.Run, name string) []*v1alpha1.Host {
	return slices.DeleteFunc(slices.Clone(r.Cluster.EtcdMembers()), func(m *v1alpha1.Host) bool { return m.Name == name })
}

// promoteChange promotes hc's learner to a voting member once it has
// caught up with the leader (etcd refuses before), trying every second.
func promoteChange(hc *engine.HostCtx, phase string) *engine.Change {
	r, peer := hc.Run, etcdPeerURL(hc.Host)
	others := etcdOthers(r, hc.Name())
	return &engine.Change{Host: hc.Name(), Phase: phase, Kind: engine.KindCommand, Key: "promote:etcd",
		Desc: "etcdctl member promote " + hc.Name() + " once the learner has caught up",
		Apply: func(ctx context.Context, _ transport.Host) error {
			conn, err := r.Connect(ctx, others[0])
			if err != nil {
				return err
			}
			last := ""
			err = engine.Poll(ctx, etcdHealthTimeout, time.Second, func(ctx context.Context) (bool, error) {
				members, err := etcdMembers(ctx, r, others[0])
				if err != nil {
					last = err.Error()
					return false, nil
				}
				i := slices.IndexFunc(members, func(l etcdListed) bool { return slices.Contains(l.PeerURLs, peer) })
				if i < 0 {
					return false, fmt.Errorf("%s is not an etcd member", hc.Name())
				}
				if !members[i].IsLearner {
					return true, nil
				}
				res, err := conn.Run(ctx, transport.Cmd{Command: etcdctlCmd(others, fmt.Sprintf("member promote %x", members[i].ID)), Timeout: 30 * time.Second})
				if err != nil {
					last = strings.TrimSpace(string(res.Stderr) + " " + err.Error())
					return false, nil
				}
				return true, nil
			})
			if errors.Is(err, engine.ErrTimeout) {
				return engine.Errorf(hc.Name(), phase, "check 'journalctl -u etcd' on "+hc.Name()+"; run apply again to retry",
					"the learner %s was not promoted within %s (last: %s)", hc.Name(), etcdHealthTimeout, last)
			}
			return err
		}}
}

func unitCommand(hc *engine.HostCtx, phase, desc, key, cmd string) *engine.Change {
	c := engine.CommandChange(hc, phase, desc, cmd)
	c.Kind, c.Key = engine.KindUnit, key
	return c
}
