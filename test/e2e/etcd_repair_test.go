package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repairEmptiedMember empties member's etcd data dir by hand (etcd then
// crash-loops: "member has already been bootstrapped"), shows that plan
// names the repair, and that apply replaces the member (remove, add, start
// as "existing") while the other two keep quorum and the API answers
// through the VIP; a further apply changes nothing.
func (e *env) repairEmptiedMember(t *testing.T, member string) {
	deadline := time.Now().Add(3 * time.Minute)
	for e.etcdMemberIDs() == "" {
		if time.Now().After(deadline) {
			t.Fatal("etcd did not have 3 healthy members to start from")
		}
		time.Sleep(2 * time.Second)
	}
	before := e.etcdMemberIDs()
	e.exec(member, "systemctl stop etcd && rm -rf /var/lib/etcd/* && systemctl start --no-block etcd")
	plan := e.k4t("plan", "-f", e.inv)
	if plan.code != 0 {
		t.Fatalf("plan with %s's data gone: exit %d\n%s\n%s", member, plan.code, plan.stderr, tail(plan.stdout, 30))
	}
	mustContain(t, "plan", plan.stdout, "etcdctl member remove", "etcdctl member add "+member)

	var others []string
	for _, m := range []string{"master1", "master2", "master3"} {
		if m != member {
			others = append(others, m)
		}
	}
	p := startProbe(t, filepath.Join(e.stateDir, "clusters", "lab", "admin.conf"), "https://"+vip+":6443")
	stop := make(chan struct{})
	h, watched := e.watchHealth(others, stop)
	r := e.k4t("apply", "-f", e.inv)
	close(stop)
	<-watched
	calls, failures, longest := p.finish()
	if r.code != 0 {
		t.Fatalf("apply with %s's data gone: exit %d\n%s\n%s", member, r.code, r.stderr, tail(r.stdout, 30))
	}
	fmt.Printf("FIGURE etcd-member-repair: apply %s, %d change(s); the other members' fewest healthy %d/2; API via the VIP every 200ms: %d calls, %d failures, longest gap %s\n",
		r.duration.Round(time.Millisecond), r.changes(), h.minEtcd, calls, len(failures), longest.Round(time.Millisecond))
	if h.minEtcd < 2 {
		t.Errorf("the members left lost quorum: %d of 2 healthy at one point", h.minEtcd)
	}
	if h.minReady < 5 {
		t.Errorf("only %d node(s) Ready at one point", h.minReady)
	}
	e.allNodesReady(t)
	if len(failures) > 0 {
		t.Errorf("%d API call(s) through the VIP failed:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	after := e.etcdMemberIDs()
	if after == "" {
		t.Fatalf("etcd not 3/3 healthy after the repair")
	}
	t.Logf("members before %s; after %s", before, after)
	for _, m := range others {
		if idOf(before, m) != idOf(after, m) {
			t.Errorf("%s's member ID changed: %s -> %s", m, idOf(before, m), idOf(after, m))
		}
	}
	if idOf(after, member) == "" || idOf(after, member) == idOf(before, member) {
		t.Errorf("%s was not replaced by a new member: %s -> %s", member, idOf(before, member), idOf(after, member))
	}
	if r := e.k4t("apply", "-f", e.inv); r.code != 0 || r.changes() != 0 {
		t.Errorf("apply after the repair: exit %d, %d change(s)\n%s", r.code, r.changes(), tail(r.stdout, 20))
	}
}

// idOf finds a member's ID in etcdMemberIDs' "name id, name id" list.
func idOf(ids, name string) string {
	for _, f := range strings.Split(ids, ", ") {
		if n, id, ok := strings.Cut(f, " "); ok && n == name {
			return id
		}
	}
	return ""
}
