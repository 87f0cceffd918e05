package phases

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/transport"
)

// deleteCluster is the ha example with fake hosts: etcd answers member list
// and health from master1/master2 (healthy says how many are healthy), and
// the API from a fake clientset.
type deleteCluster struct {
	r       *engine.Run
	fakes   map[string]*transport.Fake
	client  *fake.Clientset
	members []string
	healthy int
}

func newDeleteCluster(t *testing.T) *deleteCluster {
	c, st := loadExample(t, "ha.yaml")
	dc := &deleteCluster{fakes: map[string]*transport.Fake{}, members: []string{"master1", "master2", "master3"}, healthy: 2}
	for _, h := range c.Spec.Hosts {
		f := transport.NewFake(h.Name)
		name := h.Name
		f.OnRun = func(cmd transport.Cmd) (transport.Result, error) {
			switch {
			case strings.Contains(cmd.Command, "member list -w json"):
				var ms []string
				for i, m := range dc.members {
					ms = append(ms, fmt.Sprintf(`{"ID":%d,"name":%q,"peerURLs":["https://%s:2380"]}`, i+1, m, c.Host(m).InternalAddress))
				}
				return transport.Result{Stdout: []byte(`{"members":[` + strings.Join(ms, ",") + `]}`)}, nil
			case strings.Contains(cmd.Command, "member remove "):
				id := strings.Fields(cmd.Command[strings.Index(cmd.Command, "member remove "):])[2]
				var keep []string
				for i, m := range dc.members {
					if fmt.Sprintf("%x", i+1) != id {
						keep = append(keep, m)
					}
				}
				dc.members = keep
			case strings.Contains(cmd.Command, "endpoint health -w json"):
				var hs []string
				for i := 0; i < 2; i++ {
					hs = append(hs, fmt.Sprintf(`{"health":%v}`, i < dc.healthy))
				}
				return transport.Result{Stdout: []byte("[" + strings.Join(hs, ",") + "]")}, nil
			case strings.Contains(cmd.Command, "endpoint health -w simple"):
				return transport.Result{Stdout: []byte(strings.Repeat("x is healthy\n", dc.healthy))}, nil
			case strings.Contains(cmd.Command, "show stat"):
				return transport.Result{Stdout: []byte("UP\n")}, nil
			case strings.HasPrefix(cmd.Command, "grep -c -F"):
				return transport.Result{Stdout: []byte("1\n")}, nil
			case strings.HasPrefix(cmd.Command, "[ -e "):
				return transport.Result{Stdout: []byte("left\n")}, nil
			}
			_ = name
			return transport.Result{}, nil
		}
		dc.fakes[h.Name] = f
	}
	var objs []runtime.Object
	for _, n := range c.Nodes() {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}})
	}
	objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config", Namespace: "kube-system"},
		Data: map[string]string{"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\netcd:\n  external:\n    caFile: /etc/kubernetes/pki/etcd/ca.crt\n    endpoints:\n    - https://10.0.0.21:2379\n    - https://10.0.0.22:2379\n    - https://10.0.0.23:2379\n    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key\nkind: ClusterConfiguration\n"}})
	dc.client = fake.NewClientset(objs...)
	dc.fakes["master1"].SetFile(transport.File{Path: initDone})
	j, err := state.OpenJournal(st.Journal(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	dc.r = &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("test"), Journal: j,
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return dc.fakes[h.Name], nil },
		Options: engine.Options{Now: time.Now}}
	if _, err := dc.r.Value("kube-client", func() (any, error) { return dc.client, nil }); err != nil {
		t.Fatal(err)
	}
	return dc
}

func (dc *deleteCluster) delete(node string) (*NodeDeletion, error) {
	d := &NodeDeletion{Node: node, ReadyTimeout: time.Second}
	_, err := (&engine.Engine{Run: dc.r, Phases: []engine.Phase{
		&DeleteCheck{D: d}, &DeleteDrain{D: d}, &DeleteFromCluster{D: d}, &DeleteForget{D: d}, &EtcdEndpoints{}, &DeleteEtcdServers{D: d}, &DeleteReset{D: d},
	}}).Execute(context.Background())
	return d, err
}

func TestDeleteMaster(t *testing.T) {
	dc := newDeleteCluster(t)
	if _, err := dc.delete("master3"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(dc.members, ",") != "master1,master2" {
		t.Errorf("etcd members %v", dc.members)
	}
	if _, err := dc.client.CoreV1().Nodes().Get(context.Background(), "master3", metav1.GetOptions{}); err == nil {
		t.Error("Node master3 not deleted")
	}
	if dc.r.Cluster.Host("master3") != nil {
		t.Error("the run still works with master3")
	}
	if removed, _ := dc.r.State.Removed(); removed["master3"].IsZero() {
		t.Errorf("state dir record %v", removed)
	}
	cm, _ := dc.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "kubeadm-config", metav1.GetOptions{})
	if cc := cm.Data["ClusterConfiguration"]; strings.Contains(cc, "10.0.0.23") || !strings.Contains(cc, "    - https://10.0.0.22:2379\n    keyFile:") {
		t.Errorf("ClusterConfiguration:\n%s", cc)
	}
	slb := strings.Join(dc.fakes["slb1"].Commands(), "\n")
	if !strings.Contains(slb, "disable server kube-apiserver/master3") || strings.Index(slb, "disable server kube-apiserver/master2") < strings.Index(slb, "disable server kube-apiserver/master3") {
		t.Errorf("slb1: master3 out first, then each other master in turn:\n%s", slb)
	}
	for _, m := range []string{"master1", "master2"} {
		if cmds := strings.Join(dc.fakes[m].Commands(), "\n"); !strings.Contains(cmds, "kubeadm upgrade node phase control-plane") {
			t.Errorf("%s's kube-apiserver not given the members left:\n%s", m, cmds)
		}
	}
	if cmds := strings.Join(dc.fakes["master3"].Commands(), "\n"); strings.Count(cmds, "sh -s") != 3 {
		t.Errorf("master3 not reset (kubernetes, etcd, os):\n%s", cmds)
	}
}

func TestDeleteRefusals(t *testing.T) {
	dc := newDeleteCluster(t)
	dc.healthy = 1
	if _, err := dc.delete("master3"); err == nil || !strings.Contains(err.Error(), "refusing to remove master3 from etcd: only 1 of the 2 members left are healthy") {
		t.Errorf("quorum: %v", err)
	}
	if len(dc.members) != 3 {
		t.Errorf("members changed: %v", dc.members)
	}
	notJoined := newDeleteCluster(t)
	if err := notJoined.client.CoreV1().Nodes().Delete(context.Background(), "worker3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := notJoined.delete("worker3"); err == nil || !strings.Contains(err.Error(), "worker3 is not in the cluster") {
		t.Errorf("a listed host that never joined: %v", err)
	}
	if cmds := notJoined.fakes["worker3"].Commands(); strings.Contains(strings.Join(cmds, "\n"), "sh -s") {
		t.Errorf("worker3 was reset: %v", cmds)
	}
	for node, want := range map[string]string{"master1": "is the first master", "nope": "not in the inventory"} {
		if _, err := newDeleteCluster(t).delete(node); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", node, err, want)
		}
	}
}

func TestDeleteWorkerSkipsEtcdAndHAProxy(t *testing.T) {
	dc := newDeleteCluster(t)
	if _, err := dc.delete("worker1"); err != nil {
		t.Fatal(err)
	}
	if len(dc.members) != 3 || len(dc.fakes["slb1"].Commands()) != 0 {
		t.Errorf("members %v, slb1 %v", dc.members, dc.fakes["slb1"].Commands())
	}
	if cmds := strings.Join(dc.fakes["worker1"].Commands(), "\n"); strings.Count(cmds, "sh -s") != 2 {
		t.Errorf("worker1 not reset (kubernetes, os):\n%s", cmds)
	}
}

// A master added back: kubeadm-config lists it again before it joins.
func TestEtcdEndpointsFollowTheInventory(t *testing.T) {
	cc := "apiVersion: kubeadm.k8s.io/v1beta4\netcd:\n  external:\n    caFile: x\n    endpoints:\n    - https://10.0.0.21:2379\n    keyFile: y\nkind: ClusterConfiguration\n"
	got, err := setConfigEtcdEndpoints(cc, []string{"https://10.0.0.21:2379", "https://10.0.0.23:2379"})
	want := "apiVersion: kubeadm.k8s.io/v1beta4\netcd:\n  external:\n    caFile: x\n    endpoints:\n    - https://10.0.0.21:2379\n    - https://10.0.0.23:2379\n    keyFile: y\nkind: ClusterConfiguration\n"
	if err != nil || got != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
	if _, err := setConfigEtcdEndpoints("etcd:\n  local:\n    dataDir: /var/lib/etcd\n", []string{"https://a:2379"}); err == nil {
		t.Error("a local etcd config was edited")
	}
}

// A delete killed after the Node and the member went, before the state dir
// recorded the node: the re-run recognises it by the journal and finishes.
func TestDeleteKilledAfterTheMemberWent(t *testing.T) {
	dc := newDeleteCluster(t)
	if err := dc.r.Journal.Record("master3", deletePhase, state.Intent, deleteKey("master3"), "deleting master3"); err != nil {
		t.Fatal(err)
	}
	dc.client.CoreV1().Nodes().Delete(context.Background(), "master3", metav1.DeleteOptions{})
	dc.members = []string{"master1", "master2"}
	if _, err := dc.delete("master3"); err != nil {
		t.Fatal(err)
	}
	if removed, _ := dc.r.State.Removed(); removed["master3"].IsZero() {
		t.Error("not recorded as deleted")
	}
	if p, _ := state.PendingIntents(dc.r.State.Journal()); len(p) != 0 {
		t.Errorf("left pending: %+v", p)
	}
}
