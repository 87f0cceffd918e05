package phases

import (
	"context"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

func etcdTestRun(t *testing.T) (*engine.Run, map[string]*transport.Fake) {
	t.Helper()
	c := &v1alpha1.Cluster{}
	c.Spec.Etcd.DataDir = "/var/lib/etcd"
	fakes := map[string]*transport.Fake{}
	for i, n := range []string{"master1", "master2", "master3"} {
		ip := "10.77.0.1" + string(rune('3'+i))
		c.Spec.Hosts = append(c.Spec.Hosts, v1alpha1.Host{Name: n, Address: ip, InternalAddress: ip, Roles: []v1alpha1.Role{v1alpha1.RoleMaster}})
		fakes[n] = transport.NewFake(n)
	}
	r := &engine.Run{Cluster: c, Options: engine.Options{Now: func() time.Time { return time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) }},
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return fakes[h.Name], nil }}
	return r, fakes
}

func descs(cs []*engine.Change) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Desc)
	}
	return strings.Join(out, " | ")
}

// A member whose data is gone is replaced only while the others keep
// quorum; each step is derived from the member list, so a run killed
// between two steps finishes with the next.
func TestEtcdRepairSteps(t *testing.T) {
	r, fakes := etcdTestRun(t)
	withData := etcdMemberState{Active: true, HasData: true, DirUsed: true, State: "new"}
	listed := func(master2 string) []etcdListed {
		l := []etcdListed{{ID: 0x1a, Name: "master1", PeerURLs: []string{"https://10.77.0.13:2380"}},
			{ID: 0x3c, Name: "master3", PeerURLs: []string{"https://10.77.0.15:2380"}}}
		if master2 != "absent" {
			l = append(l, etcdListed{ID: 0x2b, Name: master2, PeerURLs: []string{"https://10.77.0.14:2380"}})
		}
		return l
	}
	cases := []struct {
		name      string
		m2        etcdMemberState
		healthy   bool
		formed    bool
		list      []etcdListed
		want      string // descriptions, or "error: ..." substring
		wantState string
	}{
		{"data present: nothing", withData, true, true, listed("master2"), "", "new"},
		{"wiped while the others keep quorum: stop, move aside, remove, add", etcdMemberState{Active: true, DirUsed: true, State: "new"}, true, true, listed("master2"),
			"stop etcd (its data is gone; it is replaced below) | move /var/lib/etcd aside to /var/lib/etcd.k4t-20261130T120000Z (what is left of a member without a WAL) | " +
				"etcdctl member remove 2b (master2 lost its data; the other members keep quorum) | etcdctl member add master2 --peer-urls=https://10.77.0.14:2380 --learner", "existing"},
		{"data dir emptied, unit crash-looping", etcdMemberState{State: "new"}, true, true, listed("master2"),
			"etcdctl member remove 2b (master2 lost its data; the other members keep quorum) | etcdctl member add master2 --peer-urls=https://10.77.0.14:2380 --learner", "existing"},
		{"killed after remove: add only", etcdMemberState{State: "existing"}, true, true, listed("absent"),
			"etcdctl member add master2 --peer-urls=https://10.77.0.14:2380 --learner", "existing"},
		{"killed after add: it only has to start", etcdMemberState{State: "existing"}, true, true, listed(""), "", "existing"},
		{"first start interrupted, the others formed quorum: start", etcdMemberState{State: "new"}, true, false, listed(""), "", "existing"},
		{"new cluster: start together", etcdMemberState{}, false, false, nil, "", "new"},
		{"no quorum after the cluster formed: refuse", etcdMemberState{State: "new"}, false, true, nil, "error: no quorum", "new"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &etcdCluster{members: map[string]etcdMemberState{"master1": withData, "master2": tc.m2, "master3": withData},
				healthy: tc.healthy, formed: tc.formed, listed: tc.list}
			hc := &engine.HostCtx{Host: &r.Cluster.Spec.Hosts[1], Conn: fakes["master2"], Run: r}
			cs, err := c.repairChanges(hc, "etcd")
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "snapshot") {
					t.Fatalf("want an error with %q and the way out, got %v", want, err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if got := descs(cs); got != tc.want {
				t.Errorf("changes:\n got %s\nwant %s", got, tc.want)
			}
			if got := c.clusterState("master2"); got != tc.wantState {
				t.Errorf("cluster state %q, want %q", got, tc.wantState)
			}
			// an added member is promoted after its start
			if want := strings.Contains(tc.want, "--learner"); err == nil && c.needsPromotion(hc, cs) != want {
				t.Errorf("needs promotion %v, want %v", !want, want)
			}
		})
	}
	// A learner that started but was not promoted (a run killed in
	// between) is promoted by the next run, though its data is there.
	l := listed("master2")
	l[2].IsLearner = true
	c := &etcdCluster{members: map[string]etcdMemberState{"master1": withData, "master2": withData, "master3": withData}, healthy: true, formed: true, listed: l}
	hc := &engine.HostCtx{Host: &r.Cluster.Spec.Hosts[1], Conn: fakes["master2"], Run: r}
	if cs, _ := c.repairChanges(hc, "etcd"); len(cs) != 0 || !c.needsPromotion(hc, cs) {
		t.Errorf("a started learner: repair %v, promotion %v", descs(cs), c.needsPromotion(hc, cs))
	}
}

// The probe reads each member in one command and, with a member running,
// health and the member list from it.
func TestProbeEtcd(t *testing.T) {
	r, fakes := etcdTestRun(t)
	fakes["master1"].Respond("echo active=", "active=active\ndata=yes\nused=yes\nstate=new\n")
	fakes["master2"].Respond("echo active=", "active=activating\nused=yes\nstate=new\n")
	fakes["master3"].Respond("echo active=", "active=active\ndata=yes\nused=yes\nstate=new\n")
	fakes["master1"].Respond("ETCDCTL_API=3 etcdctl --endpoints=https://10.77.0.13:2379,https://10.77.0.14:2379,https://10.77.0.15:2379 --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key --command-timeout=5s endpoint health",
		`[{"endpoint":"https://10.77.0.13:2379","health":true},{"endpoint":"https://10.77.0.14:2379","health":false},{"endpoint":"https://10.77.0.15:2379","health":true}]`)
	fakes["master1"].RespondRegexp("member list -w json", `{"members":[{"ID":12345678901234567890,"name":"master1","peerURLs":["https://10.77.0.13:2380"]},{"ID":2,"name":"master2","peerURLs":["https://10.77.0.14:2380"]}]}`)
	c, err := probeEtcd(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !c.healthy || len(c.listed) != 2 || c.listed[0].ID != 12345678901234567890 {
		t.Fatalf("probe: healthy %v, listed %+v", c.healthy, c.listed)
	}
	if lost := c.lost(); len(lost) != 1 || lost[0] != "master2" || c.members["master2"].Active != true {
		t.Errorf("lost %v, master2 %+v", lost, c.members["master2"])
	}
}

// A member with data keeps the ETCD_INITIAL_CLUSTER its host has (etcd no
// longer reads it), so a member joining does not restart the others; a
// member without data gets the inventory's.
func TestEtcdInitialClusterKept(t *testing.T) {
	old := "master1=https://10.77.0.13:2380,master2=https://10.77.0.14:2380"
	c := &etcdCluster{healthy: true, members: map[string]etcdMemberState{
		"master1": {Active: true, HasData: true, State: "new", Initial: old},
		"master3": {State: "existing"},
	}}
	if got := c.initialCluster("master1"); got != old {
		t.Errorf("master1 with data: %q, want its host's %q", got, old)
	}
	if got := c.initialCluster("master3"); got != "" {
		t.Errorf("master3 without data: %q, want the inventory's", got)
	}
}
