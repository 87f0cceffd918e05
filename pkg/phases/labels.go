package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// NodeLabels puts each host's inventory labels on its Node and takes away
// the ones k4t set before that the inventory dropped. The keys k4t set are
// kept in the Node's annotation k4t.io/labels, so labels that others set are
// never touched.
type NodeLabels struct {
	// nodes is read once in Prepare: name -> labels and k4t's keys.
	nodes map[string]nodeLabels
}

type nodeLabels struct {
	labels map[string]string
	ours   []string
}

// labelsAnnotation lists, comma-separated, the label keys k4t set on a Node.
const labelsAnnotation = "k4t.io/labels"

func (*NodeLabels) Name() string                         { return "labels" }
func (*NodeLabels) Title() string                        { return "Labels: the inventory's labels on each Node" }
func (*NodeLabels) Hosts(r *engine.Run) []*v1alpha1.Host { return kubeNodes(r) }

// Prepare reads every Node's labels and annotation (read-only). Before the
// cluster exists (plan on new hosts) there are none yet.
func (p *NodeLabels) Prepare(ctx context.Context, r *engine.Run) error {
	p.nodes = map[string]nodeLabels{}
	nodes, err := listNodes(ctx, r)
	if err != nil {
		if r.DryRun {
			return nil // no API yet: every label is planned
		}
		return fmt.Errorf("reading the nodes' labels: %w", err)
	}
	for _, n := range nodes {
		var ours []string
		if a := n.Annotations[labelsAnnotation]; a != "" {
			ours = strings.Split(a, ",")
		}
		p.nodes[n.Name] = nodeLabels{labels: n.Labels, ours: ours}
	}
	return nil
}

func (p *NodeLabels) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	patch, desc := labelPatch(hc.Host.Labels, p.nodes[hc.Name()])
	if patch == nil {
		return nil, nil
	}
	r, node := hc.Run, hc.Name()
	return []*engine.Change{{Host: node, Kind: engine.KindCommand, Key: "labels:" + node,
		Desc: "label node " + node + ": " + desc,
		Apply: func(ctx context.Context, _ transport.Host) error {
			c, err := kubeClient(ctx, r)
			if err != nil {
				return err
			}
			_, err = c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "k4t"})
			return err
		}}}, nil
}

// labelPatch is the JSON merge patch that brings a Node from have to want
// — k: v to set, k: null to remove what k4t set before, the annotation
// listing want's keys — and a line for people; nil when the Node matches.
func labelPatch(want map[string]string, have nodeLabels) (patch []byte, desc string) {
	labels := map[string]any{}
	var words []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := have.labels[k]; !ok || v != want[k] {
			labels[k] = want[k]
			words = append(words, k+"="+want[k])
		}
	}
	for _, k := range slices.Sorted(slices.Values(have.ours)) {
		if _, keep := want[k]; !keep {
			if _, on := have.labels[k]; on {
				labels[k] = nil
				words = append(words, "remove "+k)
			}
		}
	}
	keys := slices.Sorted(maps.Keys(want))
	staleNote := !slices.Equal(keys, slices.Sorted(slices.Values(have.ours)))
	if len(labels) == 0 && !staleNote {
		return nil, ""
	}
	var note any // null removes the annotation
	if len(keys) > 0 {
		note = strings.Join(keys, ",")
	}
	meta := map[string]any{"annotations": map[string]any{labelsAnnotation: note}}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if len(words) == 0 {
		words = append(words, "record which labels are k4t's")
	}
	b, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return b, strings.Join(words, ", ")
}
