package phases

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/status"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// statusTimeout bounds one host's status command.
const statusTimeout = 20 * time.Second

// ClusterStatus is `k4t status`: one SSH connection and one read-only
// command per host, every host at once; then the API's nodes and leases,
// through the first master's connection. It changes nothing anywhere, so
// it needs nothing from the nodes but sshd.
func ClusterStatus(ctx context.Context, r *engine.Run, th status.Thresholds) *status.Report {
	start := r.Now()
	rep := &status.Report{Cluster: r.Cluster.Metadata.Name, Time: start.UTC()}
	if len(r.Cluster.SLBs()) > 0 {
		rep.VIP = r.Cluster.Spec.ControlPlaneEndpoint.Address
	}
	hosts := engine.AllHosts(r)
	rep.Hosts = make([]*status.Host, len(hosts))
	for i, h := range hosts {
		rep.Hosts[i] = &status.Host{Name: h.Name}
		for _, role := range h.Roles {
			rep.Hosts[i].Roles = append(rep.Hosts[i].Roles, string(role))
		}
	}
	// The API is asked while the hosts answer: its first call dials the
	// first master too.
	type apiView struct {
		nodes  map[string]*status.Node
		leases map[string]string
		err    string
	}
	api := make(chan apiView, 1)
	go func() {
		var v apiView
		v.nodes, v.leases, v.err = apiStatus(ctx, r)
		api <- v
	}()
	_ = engine.ForEachHost(ctx, r, hosts, func(ctx context.Context, h *v1alpha1.Host) error {
		out := rep.Hosts[slices.Index(hosts, h)]
		t0 := time.Now()
		conn, err := r.Connect(ctx, h)
		out.Login = time.Since(t0).Round(time.Millisecond)
		if err != nil {
			out.Error = firstLine(err.Error())
			return nil
		}
		script, err := templates.StatusScript(statusInput(r, h))
		if err != nil {
			out.Error = err.Error()
			return nil
		}
		sent := time.Now()
		res, err := conn.Run(ctx, transport.Cmd{Command: "sh -s", Stdin: script, Timeout: statusTimeout, ReadOnly: true})
		rtt := time.Since(sent)
		if err != nil {
			out.Error = firstLine(err.Error())
			// Logged in, but its script ran out of time: a host too loaded
			// to answer in time, not one that is down.
			if ctx.Err() == nil && rtt >= statusTimeout {
				out.LoggedIn = true
				out.Error = "the status script did not finish in " + statusTimeout.String() + " (an overloaded host?): " + out.Error
			}
			return nil
		}
		out.Reachable = true
		out.Parse(string(res.Stdout), sent, rtt, time.Now())
		return nil
	})
	v := <-api
	rep.Leases, rep.APIError = v.leases, v.err
	for _, h := range rep.Hosts {
		h.Node = v.nodes[h.Name]
	}
	if p, err := LatestSnapshot(r); err == nil {
		rep.NewestSnapshot = filepath.Base(p)
		if t, ok := status.SnapshotTime(rep.NewestSnapshot); ok {
			rep.NewestSnapshotAge = start.Sub(t).Round(time.Second)
		} else if fi, err := os.Stat(p); err == nil {
			rep.NewestSnapshotAge = start.Sub(fi.ModTime()).Round(time.Second)
		}
	}
	rep.Took = r.Now().Sub(start)
	rep.Judge(th)
	return rep
}

// statusInput is what the status script reads on h, by its roles.
func statusInput(r *engine.Run, h *v1alpha1.Host) templates.StatusInput {
	in := templates.StatusInput{Host: h.Name, EtcdDataDir: r.Cluster.Spec.Etcd.DataDir}
	if h.HasRole(v1alpha1.RoleSLB) {
		in.SLB, in.VIP = true, r.Cluster.Spec.ControlPlaneEndpoint.Address
		in.Units = append(in.Units, "haproxy", "keepalived")
	}
	if slices.Contains(r.Cluster.EtcdMembers(), h) {
		in.Etcd, in.EtcdAddress = true, h.InternalAddress
		in.Units = append(in.Units, "etcd")
	}
	if h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker) {
		in.Units = append(in.Units, "containerd", "kubelet")
	}
	in.Master = h.HasRole(v1alpha1.RoleMaster)
	return in
}

// apiStatus is the API's view: each node's Ready and kubelet version, and
// which master holds the scheduler's and controller-manager's leases.
func apiStatus(ctx context.Context, r *engine.Run) (map[string]*status.Node, map[string]string, string) {
	if len(r.Cluster.Masters()) == 0 {
		return nil, nil, "no master in the inventory"
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := kubeClient(ctx, r)
	if err != nil {
		return nil, nil, firstLine(err.Error())
	}
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, firstLine(err.Error())
	}
	nodes := map[string]*status.Node{}
	for i := range list.Items {
		n := &list.Items[i]
		nodes[n.Name] = &status.Node{Ready: nodeReady(n), KubeletVersion: n.Status.NodeInfo.KubeletVersion}
	}
	leases := map[string]string{}
	for _, name := range []string{"kube-scheduler", "kube-controller-manager"} {
		l, err := c.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			continue
		}
		holder, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
		leases[name] = holder
	}
	return nodes, leases, ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
