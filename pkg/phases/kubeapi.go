package phases

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// kubeClient is the run's one Kubernetes API client on the bastion. Its
// credentials are the first master's admin kubeconfig (read into memory,
// never stored), and its server — the VIP, or the single master — is
// dialled through the SSH connection already open to that master, so it
// works behind jump hosts and wherever only SSH is open.
func kubeClient(ctx context.Context, r *engine.Run) (kubernetes.Interface, error) {
	v, err := r.Value("kube-client", func() (any, error) {
		first := r.Cluster.FirstMaster()
		conn, err := r.Connect(ctx, first)
		if err != nil {
			return nil, err
		}
		b, err := conn.Get(ctx, adminConf)
		if err != nil {
			return nil, engine.WrapPhase("", first.Name, fmt.Errorf("reading %s for the API client: %w", adminConf, err))
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", adminConf, first.Name, err)
		}
		if tun, ok := conn.(transport.Tunneler); ok {
			cfg.Dial = tun.DialContext
		}
		cfg.Timeout = 20 * time.Second
		cfg.UserAgent = "k4t"
		return kubernetes.NewForConfig(cfg)
	})
	if err != nil {
		return nil, err
	}
	return v.(kubernetes.Interface), nil
}

// listNodes lists the cluster's Nodes through the API.
func listNodes(ctx context.Context, r *engine.Run) ([]corev1.Node, error) {
	c, err := kubeClient(ctx, r)
	if err != nil {
		return nil, err
	}
	l, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes (through %s's SSH connection; sshd there must allow TCP forwarding): %w", r.Cluster.FirstMaster().Name, err)
	}
	return l.Items, nil
}

// nodeNow reads one Node once, within 20 s (getNode retries for a minute).
func nodeNow(ctx context.Context, r *engine.Run, name string) (*corev1.Node, error) {
	c, err := kubeClient(ctx, r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
}

// nodeReady says whether a Node's Ready condition is True.
func nodeReady(n *corev1.Node) bool {
	return readyCondition(n).Status == corev1.ConditionTrue
}

// readyCondition is a Node's Ready condition (empty if it has none).
func readyCondition(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

// podRunning: Running with every container ready.
func podRunning(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) > 0
}
