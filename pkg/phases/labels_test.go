package phases

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func TestLabelPatch(t *testing.T) {
	node := func(labels map[string]string, ours ...string) nodeLabels {
		return nodeLabels{labels: labels, ours: ours}
	}
	for _, tc := range []struct {
		name  string
		want  map[string]string
		have  nodeLabels
		patch string // "" for no change
		desc  string
	}{
		{"nothing asked, nothing set", nil, node(map[string]string{"kubernetes.io/os": "linux"}), "", ""},
		{"new labels", map[string]string{"disk": "ssd", "zone": "a"}, node(map[string]string{"kubernetes.io/os": "linux"}),
			`{"metadata":{"annotations":{"k4t.io/labels":"disk,zone"},"labels":{"disk":"ssd","zone":"a"}}}`,
			"disk=ssd, zone=a"},
		{"in place", map[string]string{"disk": "ssd"}, node(map[string]string{"disk": "ssd"}, "disk"), "", ""},
		{"dropped from the inventory, someone else's kept", map[string]string{}, node(map[string]string{"disk": "ssd", "team": "x"}, "disk"),
			`{"metadata":{"annotations":{"k4t.io/labels":null},"labels":{"disk":null}}}`,
			"remove disk"},
		{"changed value", map[string]string{"disk": "hdd"}, node(map[string]string{"disk": "ssd"}, "disk"),
			`{"metadata":{"annotations":{"k4t.io/labels":"disk"},"labels":{"disk":"hdd"}}}`,
			"disk=hdd"},
		{"label there, annotation missing", map[string]string{"disk": "ssd"}, node(map[string]string{"disk": "ssd"}),
			`{"metadata":{"annotations":{"k4t.io/labels":"disk"}}}`, "record which labels are k4t's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			patch, desc := labelPatch(tc.want, tc.have)
			if string(patch) != tc.patch || desc != tc.desc {
				t.Errorf("got\n  %s\n  %s\nwant\n  %s\n  %s", patch, desc, tc.patch, tc.desc)
			}
			if strings.Contains(string(patch), "team") {
				t.Errorf("touched a label k4t did not set: %s", patch)
			}
		})
	}
}

// The patch, applied by the API's merge-patch rules, removes k4t's dropped
// label and its annotation and keeps a label someone else set.
func TestLabelPatchApplied(t *testing.T) {
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1",
		Labels: map[string]string{"disk": "ssd", "team": "x"}, Annotations: map[string]string{labelsAnnotation: "disk"}}})
	patch, _ := labelPatch(map[string]string{"zone": "a"}, nodeLabels{labels: map[string]string{"disk": "ssd", "team": "x"}, ours: []string{"disk"}})
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Patch(ctx, "w1", types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(n.Labels, n.Annotations); got != "map[team:x zone:a] map[k4t.io/labels:zone]" {
		t.Errorf("after the patch: %s", got)
	}
}
