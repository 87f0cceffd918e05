package phases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Health gates: what a phase or a roll waits for before it goes on. Every
// one polls with engine.Poll and, on timeout, says what it last saw and
// where to look.

// WaitAPIServerReady polls kube-apiserver's /readyz at server from the host.
func WaitAPIServerReady(ctx context.Context, hc *engine.HostCtx, server string, timeout time.Duration) error {
	return waitAPIServerReadyFor(ctx, hc, server, timeout, 1)
}

// waitAPIServerReadyFor waits until /readyz has answered ok times in a
// row, 2s apart: after a kubelet restart, which may recreate the static
// pods a few seconds later, one answer from the old container proves little.
func waitAPIServerReadyFor(ctx context.Context, hc *engine.HostCtx, server string, timeout time.Duration, ok int) error {
	inRow := 0
	err := engine.Poll(ctx, timeout, 2*time.Second, func(ctx context.Context) (bool, error) {
		err := apiServerReady(ctx, hc, server)
		if inRow = inRow + 1; err != nil {
			inRow = 0
		}
		return inRow >= ok, err
	})
	if errors.Is(err, engine.ErrTimeout) {
		return engine.Errorf(hc.Name(), "control-plane", "check 'crictl ps -a' and 'journalctl -u kubelet' on "+hc.Name(),
			"kube-apiserver at %s not ready: %v", server, err)
	}
	return err
}

// apiServerReady asks the kube-apiserver at server for /readyz once, from hc's host.
func apiServerReady(ctx context.Context, hc *engine.HostCtx, server string) error {
	cmd := fmt.Sprintf("kubectl --kubeconfig %s --server %s get --raw /readyz", adminConf, server)
	_, err := hc.Conn.Run(ctx, transport.Cmd{Command: cmd, Timeout: 15 * time.Second, ReadOnly: true})
	return err
}

// WaitEtcdHealthy waits until every member is healthy.
func WaitEtcdHealthy(ctx context.Context, r *engine.Run, timeout time.Duration) error {
	members := r.Cluster.EtcdMembers()
	return waitEtcd(ctx, r, members[0], members, len(members), timeout)
}

// waitMemberHealthy waits for one member's linearizable health check, which
// passes only when that member is part of a quorum.
func waitMemberHealthy(ctx context.Context, r *engine.Run, h *v1alpha1.Host, timeout time.Duration) error {
	return waitEtcd(ctx, r, h, []*v1alpha1.Host{h}, 1, timeout)
}

// waitEtcd polls from host `from` until want of endpoints are healthy.
func waitEtcd(ctx context.Context, r *engine.Run, from *v1alpha1.Host, endpoints []*v1alpha1.Host, want int, timeout time.Duration) error {
	conn, err := r.Connect(ctx, from)
	if err != nil {
		return err
	}
	var last string
	err = engine.Poll(ctx, timeout, time.Second, func(ctx context.Context) (bool, error) {
		res, err := conn.Run(ctx, transport.Cmd{Command: etcdctlCmd(endpoints, "endpoint health -w simple"), Timeout: 30 * time.Second, ReadOnly: true})
		out := string(res.Stdout)
		if last = strings.TrimSpace(out); err != nil && last == "" {
			last = err.Error()
		}
		return strings.Count(out, "is healthy") >= want, nil
	})
	if errors.Is(err, engine.ErrTimeout) {
		return engine.Errorf(from.Name, "etcd", "check 'journalctl -u etcd' on each member",
			"%d of %d member(s) did not become healthy in %s (last: %s)", want, len(endpoints), timeout, last)
	}
	return err
}

// VIPHolders returns the slb hosts that have the VIP on an interface now.
func VIPHolders(ctx context.Context, r *engine.Run) ([]string, error) {
	vip := r.Cluster.Spec.ControlPlaneEndpoint.Address
	var holders []string
	for _, h := range r.Cluster.SLBs() {
		conn, err := r.Connect(ctx, h)
		if err != nil {
			return nil, err
		}
		res, err := conn.Run(ctx, transport.Cmd{Command: "ip -o -4 addr show", Timeout: 10 * time.Second, ReadOnly: true})
		if err != nil {
			return nil, err
		}
		if strings.Contains(string(res.Stdout), " "+vip+"/") {
			holders = append(holders, h.Name)
		}
	}
	return holders, nil
}

// WaitVIP waits until exactly one slb holds the VIP and returns it.
func WaitVIP(ctx context.Context, r *engine.Run, timeout time.Duration) (string, error) {
	var holders []string
	err := engine.Poll(ctx, timeout, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		var err error
		holders, err = VIPHolders(ctx, r)
		if err != nil {
			return false, err
		}
		return len(holders) == 1, nil
	})
	switch {
	case err == nil:
		return holders[0], nil
	case errors.Is(err, engine.ErrTimeout):
		return "", engine.Errorf("", "slb", "check that VRRP (IP protocol 112) passes between the slb hosts",
			"the VIP %s is held by %d slb host(s) %v after %s, want exactly 1; keepalived says:\n%s",
			r.Cluster.Spec.ControlPlaneEndpoint.Address, len(holders), holders, timeout, keepalivedLogs(ctx, r))
	}
	return "", err
}

// WaitNodesReady waits until want nodes are Ready and every kube-system pod
// runs, asked through the API.
func WaitNodesReady(ctx context.Context, r *engine.Run, want int, timeout time.Duration) error {
	var last string
	var stuck []corev1.Pod
	err := engine.Poll(ctx, timeout, 3*time.Second, func(ctx context.Context) (bool, error) {
		stuck = stuck[:0] // what this poll saw only: a failed poll names no pod
		ready, notReady, err := nodesReady(ctx, r)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		c, err := kubeClient(ctx, r)
		if err != nil {
			return false, err
		}
		pods, err := c.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var waiting []string
		for i := range pods.Items {
			if p := &pods.Items[i]; !podRunning(p) {
				waiting = append(waiting, fmt.Sprintf("%s (%s on %s)", p.Name, p.Status.Phase, p.Spec.NodeName))
				stuck = append(stuck, *p)
			}
		}
		last = fmt.Sprintf("%d node(s) Ready, not Ready: %v; kube-system pods not running: %v", ready, notReady, waiting)
		return ready == want && len(waiting) == 0 && len(pods.Items) > 0, nil
	})
	if errors.Is(err, engine.ErrTimeout) {
		return engine.Errorf("", "network", "check 'kubectl get pods -A' and 'journalctl -u kubelet' on the nodes",
			"the cluster did not become Ready in %s; last seen: %s%s", timeout, last, whyWaiting(context.WithoutCancel(ctx), r, stuck))
	}
	return err
}

// whyWaiting says, for each pod that is not running, what holds it: a
// container's waiting reason and message, else the pod's latest Warning
// event (a sandbox kubelet could not create is only an event). Asked once,
// when a wait has timed out.
func whyWaiting(ctx context.Context, r *engine.Run, pods []corev1.Pod) string {
	if len(pods) == 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var events []corev1.Event
	if c, err := kubeClient(ctx, r); err == nil {
		if l, err := c.CoreV1().Events("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"}); err == nil {
			events = l.Items
		}
	}
	var b strings.Builder
	for i := range pods {
		if why := podWaitReason(&pods[i], events); why != "" {
			fmt.Fprintf(&b, "\n  %s on %s: %s", pods[i].Name, pods[i].Spec.NodeName, why)
		}
	}
	return b.String()
}

// podWaitReason is the first container's waiting reason with its message, or
// the latest Warning event about the pod, or the pod's unmet condition.
func podWaitReason(p *corev1.Pod, events []corev1.Event) string {
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Message != "" {
			return w.Reason + ": " + clip(w.Message, 300)
		}
	}
	var latest *corev1.Event
	for i := range events {
		e := &events[i]
		if e.InvolvedObject.Kind == "Pod" && e.InvolvedObject.Name == p.Name && (latest == nil || eventTime(e).After(eventTime(latest))) {
			latest = e
		}
	}
	if latest != nil {
		return latest.Reason + ": " + clip(latest.Message, 300)
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return string(c.Type) + ": " + clip(c.Message, 300)
		}
	}
	return ""
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// nodesReady counts the Ready nodes and names the others.
func nodesReady(ctx context.Context, r *engine.Run) (int, []string, error) {
	nodes, err := listNodes(ctx, r)
	if err != nil {
		return 0, nil, err
	}
	ready := 0
	var not []string
	for i := range nodes {
		if nodeReady(&nodes[i]) {
			ready++
		} else {
			not = append(not, nodes[i].Name)
		}
	}
	return ready, not, nil
}
