package phases

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
)

func TestDrainPlansAndNamesBlockingPDB(t *testing.T) {
	yes := true
	owner := func(kind, name string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, Controller: &yes}}
	}
	client := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", Labels: map[string]string{"app": "web"}, OwnerReferences: owner("ReplicaSet", "web")},
			Spec: corev1.PodSpec{NodeName: "w1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy-x", Namespace: "kube-system", OwnerReferences: owner("DaemonSet", "kube-proxy")},
			Spec: corev1.PodSpec{NodeName: "w1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec:   policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0}},
	)
	r := &engine.Run{Events: events.NewEmitter("test")}
	if _, err := r.Value("kube-client", func() (any, error) { return client, nil }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := DrainChange(ctx, r, "w1", DrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Desc != "cordon w1 and evict 1 pod(s): default/web-1" {
		t.Errorf("desc %q", c.Desc)
	}
	if got := blockingPDBs(ctx, client, "w1"); strings.Join(got, ",") != "default/web" {
		t.Errorf("blocking PDBs %v", got)
	}
	if _, err := DrainChange(ctx, r, "nope", DrainOptions{}); err == nil || !strings.Contains(err.Error(), `no node "nope"`) {
		t.Errorf("unknown node: %v", err)
	}
}
