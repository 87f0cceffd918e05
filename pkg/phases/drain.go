package phases

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// DrainOptions tune Drain. The defaults are what a node taken out of
// service needs: DaemonSet pods stay, emptyDir data goes, evictions that a
// PodDisruptionBudget refuses are retried every 2s until Timeout.
type DrainOptions struct {
	// Timeout bounds the whole drain; zero means 5 minutes. Never unbounded:
	// a PDB that never allows a disruption is reported, not waited on forever.
	Timeout time.Duration
	// DisableEviction deletes pods instead of evicting them, bypassing
	// PodDisruptionBudgets: the explicit way out, never the default.
	DisableEviction bool
	// Force also deletes pods no controller manages (they are not recreated).
	Force bool
	// skipWaitAfter > 0 stops waiting for pods deleted that long ago, and
	// gracePeriod > 0 overrides the pods' own: on a node whose kubelet is
	// gone they never finish terminating.
	skipWaitAfter time.Duration
	gracePeriod   int
}

const drainPhase = "drain"

// DrainChange cordons node and evicts its pods, through the run's API
// client (k8s.io/kubectl/pkg/drain). Plan shows the pods it would evict.
func DrainChange(ctx context.Context, r *engine.Run, node string, o DrainOptions) (*engine.Change, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	client, err := kubeClient(ctx, r)
	if err != nil {
		return nil, err
	}
	if _, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err != nil {
		return nil, engine.Errorf(node, drainPhase, "check the node's name with kubectl get nodes", "no node %q in the cluster: %v", node, err)
	}
	h := drainHelper(ctx, r, client, o)
	list, errs := h.GetPodsForDeletion(node)
	if len(errs) > 0 {
		return nil, engine.Errorf(node, drainPhase, "pass --force to delete pods no controller manages (they are not recreated)", "%v", errors.Join(errs...))
	}
	var names []string
	for _, p := range list.Pods() {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	verb := "evict"
	if o.DisableEviction {
		verb = "delete (eviction disabled: PodDisruptionBudgets are not asked)"
	}
	desc := fmt.Sprintf("cordon %s and %s %d pod(s)", node, verb, len(names))
	if len(names) > 0 {
		desc += ": " + strings.Join(names, ", ")
	}
	return &engine.Change{Host: node, Phase: drainPhase, Kind: engine.KindCommand, Key: "drain:" + node, Desc: desc,
		Apply: func(ctx context.Context, _ transport.Host) error { return runDrain(ctx, r, client, node, o) }}, nil
}

func drainHelper(ctx context.Context, r *engine.Run, client kubernetes.Interface, o DrainOptions) *drain.Helper {
	return &drain.Helper{
		Ctx: ctx, Client: client, Force: o.Force, GracePeriodSeconds: cmp.Or(o.gracePeriod, -1),
		IgnoreAllDaemonSets: true, DeleteEmptyDirData: true, DisableEviction: o.DisableEviction,
		Timeout: o.Timeout, EvictErrorRetryDelay: 2 * time.Second,
		SkipWaitForDeleteTimeoutSeconds: int(o.skipWaitAfter.Seconds()),
		Out:                             eventWriter{r, "info"}, ErrOut: eventWriter{r, "warn"},
	}
}

func runDrain(ctx context.Context, r *engine.Run, client kubernetes.Interface, node string, o DrainOptions) error {
	h := drainHelper(ctx, r, client, o)
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if err := drain.RunCordonOrUncordon(h, n, true); err != nil {
		return fmt.Errorf("cordoning: %w", err)
	}
	if err := drain.RunNodeDrain(h, node); err != nil {
		if pdbs := blockingPDBs(ctx, client, node); len(pdbs) > 0 {
			return engine.Errorf(node, drainPhase, "let the PodDisruptionBudget allow a disruption (more replicas, or a lower minAvailable), or pass --disable-eviction to delete the pods regardless",
				"drain did not finish in %s: PodDisruptionBudget %s allows no disruption now", o.Timeout, strings.Join(pdbs, ", "))
		}
		return engine.Errorf(node, drainPhase, "see the pods left with kubectl get pods -A --field-selector spec.nodeName="+node, "drain did not finish: %v", err)
	}
	return nil
}

// blockingPDBs names the PodDisruptionBudgets that cover a pod still on
// node and allow no disruption.
func blockingPDBs(ctx context.Context, client kubernetes.Interface, node string) []string {
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		pdbs, err := client.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, b := range pdbs.Items {
			sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) || b.Status.DisruptionsAllowed > 0 {
				continue
			}
			if name := b.Namespace + "/" + b.Name; !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// Uncordon lets the scheduler place pods on node again.
func Uncordon(ctx context.Context, r *engine.Run, node string) error {
	client, err := kubeClient(ctx, r)
	if err != nil {
		return err
	}
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return engine.Errorf(node, drainPhase, "check the node's name with kubectl get nodes", "no node %q in the cluster", node)
	}
	if err != nil {
		return err
	}
	c := &engine.Change{Host: node, Phase: drainPhase, Kind: engine.KindCommand, Key: "uncordon:" + node, Desc: "uncordon " + node,
		Apply: func(ctx context.Context, _ transport.Host) error { return uncordon(ctx, r, node) }}
	if !n.Spec.Unschedulable {
		r.Events.Infof(drainPhase, node, "%s is schedulable already", node)
		return nil
	}
	return engine.ApplyOrPlan(ctx, r, nil, c)
}

// uncordon marks node schedulable, if it is not, without planning.
func uncordon(ctx context.Context, r *engine.Run, node string) error {
	client, err := kubeClient(ctx, r)
	if err != nil {
		return err
	}
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil || !n.Spec.Unschedulable {
		return err
	}
	return drain.RunCordonOrUncordon(drainHelper(ctx, r, client, DrainOptions{}), n, false)
}

// eventWriter turns the drain library's lines into events.
type eventWriter struct {
	r     *engine.Run
	level string
}

func (w eventWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if l == "" {
			continue
		}
		if w.level == "warn" {
			w.r.Events.Warnf(drainPhase, "", "%s", l)
		} else {
			w.r.Events.Infof(drainPhase, "", "%s", l)
		}
	}
	return len(p), nil
}

var _ io.Writer = eventWriter{}
