package phases

import (
	"strings"
	"testing"
)

func TestLabelCommand(t *testing.T) {
	node := func(labels map[string]string, ours ...string) nodeLabels {
		return nodeLabels{labels: labels, ours: ours}
	}
	for _, tc := range []struct {
		name string
		want map[string]string
		have nodeLabels
		cmd  string // "" for no change
		desc string
	}{
		{"nothing asked, nothing set", nil, node(map[string]string{"kubernetes.io/os": "linux"}), "", ""},
		{"new labels", map[string]string{"disk": "ssd", "zone": "a"}, node(map[string]string{"kubernetes.io/os": "linux"}),
			"kubectl --kubeconfig /etc/kubernetes/admin.conf label node w1 --overwrite 'disk=ssd' 'zone=a' && kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node w1 --overwrite 'k4t.io/labels=disk,zone'",
			"disk=ssd, zone=a"},
		{"in place", map[string]string{"disk": "ssd"}, node(map[string]string{"disk": "ssd"}, "disk"), "", ""},
		{"dropped from the inventory, someone else's kept", map[string]string{}, node(map[string]string{"disk": "ssd", "team": "x"}, "disk"),
			"kubectl --kubeconfig /etc/kubernetes/admin.conf label node w1 --overwrite 'disk-' && kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node w1 --overwrite 'k4t.io/labels-'",
			"remove disk"},
		{"changed value", map[string]string{"disk": "hdd"}, node(map[string]string{"disk": "ssd"}, "disk"),
			"kubectl --kubeconfig /etc/kubernetes/admin.conf label node w1 --overwrite 'disk=hdd' && kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node w1 --overwrite 'k4t.io/labels=disk'",
			"disk=hdd"},
		{"label there, annotation missing", map[string]string{"disk": "ssd"}, node(map[string]string{"disk": "ssd"}),
			"kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node w1 --overwrite 'k4t.io/labels=disk'", "record which labels are k4t's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, desc := labelCommand("w1", tc.want, tc.have)
			if cmd != tc.cmd || desc != tc.desc {
				t.Errorf("got\n  %s\n  %s\nwant\n  %s\n  %s", cmd, desc, tc.cmd, tc.desc)
			}
			if strings.Contains(cmd, "team") {
				t.Errorf("touched a label k4t did not set: %s", cmd)
			}
		})
	}
}
