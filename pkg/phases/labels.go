package phases

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

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
	cmd, desc := labelCommand(hc.Name(), hc.Host.Labels, p.nodes[hc.Name()])
	if cmd == "" {
		return nil, nil
	}
	r := hc.Run
	return []*engine.Change{{Host: hc.Name(), Kind: engine.KindCommand, Key: "labels:" + hc.Name(),
		Desc: "label node " + hc.Name() + ": " + desc,
		// kubectl runs where the admin kubeconfig is: the first master.
		Apply: func(ctx context.Context, _ transport.Host) error {
			conn, err := r.Connect(ctx, r.Cluster.FirstMaster())
			if err != nil {
				return err
			}
			_, err = conn.Run(ctx, transport.Cmd{Command: cmd, Timeout: time.Minute})
			return err
		}}}, nil
}

// labelCommand is the kubectl command (run with the admin kubeconfig) that
// brings node from have to want — k=v to set, k- to remove what k4t set
// before, the annotation listing want's keys — and a line for people; ""
// when the Node already matches.
func labelCommand(node string, want map[string]string, have nodeLabels) (cmd, desc string) {
	var args, words []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := have.labels[k]; !ok || v != want[k] {
			args = append(args, transport.ShellQuote(k+"="+want[k]))
			words = append(words, k+"="+want[k])
		}
	}
	for _, k := range slices.Sorted(slices.Values(have.ours)) {
		if _, keep := want[k]; !keep {
			if _, on := have.labels[k]; on {
				args = append(args, transport.ShellQuote(k+"-"))
				words = append(words, "remove "+k)
			}
		}
	}
	keys := slices.Sorted(maps.Keys(want))
	staleNote := !slices.Equal(keys, slices.Sorted(slices.Values(have.ours)))
	if len(args) == 0 && !staleNote {
		return "", ""
	}
	kc := "kubectl --kubeconfig " + adminConf
	var parts []string
	if len(args) > 0 {
		parts = append(parts, fmt.Sprintf("%s label node %s --overwrite %s", kc, node, strings.Join(args, " ")))
	}
	note := transport.ShellQuote(labelsAnnotation + "-")
	if len(keys) > 0 {
		note = transport.ShellQuote(labelsAnnotation + "=" + strings.Join(keys, ","))
	}
	parts = append(parts, fmt.Sprintf("%s annotate node %s --overwrite %s", kc, node, note))
	if len(words) == 0 {
		words = append(words, "record which labels are k4t's")
	}
	return strings.Join(parts, " && "), strings.Join(words, ", ")
}
