package phases

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// EtcdEndpoints keeps kubeadm's ClusterConfiguration in the running cluster
// (kube-system/kubeadm-config) listing the etcd members of the inventory.
// kubeadm renders kube-apiserver's --etcd-servers from it when a master
// joins or is upgraded, so a master added later gets every member, and one
// after a member's removal none that is gone. Nothing before the cluster
// exists (kubeadm init writes it then).
type EtcdEndpoints struct{}

func (*EtcdEndpoints) Name() string { return "etcd-endpoints" }
func (*EtcdEndpoints) Title() string {
	return "kubeadm's etcd endpoints in the cluster (kubeadm-config), for masters that join or upgrade"
}
func (*EtcdEndpoints) Hosts(r *engine.Run) []*v1alpha1.Host {
	if m := r.Cluster.FirstMaster(); m != nil {
		return []*v1alpha1.Host{m}
	}
	return nil
}

func (p *EtcdEndpoints) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	fi, err := hc.Conn.Stat(ctx, initDone)
	if err != nil || !fi.Exists {
		return nil, err // no cluster yet
	}
	want := etcdEndpointURLs(r)
	client, err := kubeClient(ctx, r)
	if err != nil {
		return nil, err
	}
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		return nil, engine.WrapPhase(p.Name(), hc.Name(), fmt.Errorf("reading kube-system/kubeadm-config: %w", err))
	}
	have, err := configEtcdEndpoints(cm.Data["ClusterConfiguration"])
	if err != nil {
		return nil, engine.WrapPhase(p.Name(), hc.Name(), err)
	}
	if slices.Equal(slices.Sorted(slices.Values(have)), slices.Sorted(slices.Values(want))) {
		return nil, nil
	}
	return []*engine.Change{{Kind: engine.KindCommand, Key: "etcd-endpoints",
		Desc: fmt.Sprintf("set kubeadm's etcd endpoints (kube-system/kubeadm-config) to %s (were %s)", strings.Join(want, ", "), strings.Join(have, ", ")),
		Apply: func(ctx context.Context, _ transport.Host) error {
			return editClusterConfiguration(ctx, client, func(cc string) (string, error) { return setConfigEtcdEndpoints(cc, want) })
		}}}, nil
}

// editClusterConfiguration rewrites kubeadm's ClusterConfiguration in
// kube-system/kubeadm-config with edit.
func editClusterConfiguration(ctx context.Context, client kubernetes.Interface, edit func(string) (string, error)) error {
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		return err
	}
	edited, err := edit(cm.Data["ClusterConfiguration"])
	if err != nil {
		return err
	}
	cm.Data["ClusterConfiguration"] = edited
	_, err = client.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

func etcdEndpointURLs(r *engine.Run) []string {
	var out []string
	for _, m := range r.Cluster.EtcdMembers() {
		out = append(out, etcdClientURL(m))
	}
	return out
}

// configEtcdEndpoints reads etcd.external.endpoints of a ClusterConfiguration.
func configEtcdEndpoints(cc string) ([]string, error) {
	var c struct {
		Etcd struct {
			External *struct {
				Endpoints []string `json:"endpoints"`
			} `json:"external"`
		} `json:"etcd"`
	}
	if err := yaml.Unmarshal([]byte(cc), &c); err != nil {
		return nil, fmt.Errorf("reading kubeadm's ClusterConfiguration: %w", err)
	}
	if c.Etcd.External == nil {
		return nil, fmt.Errorf("kubeadm's ClusterConfiguration has no external etcd: this cluster's etcd is not k4t's")
	}
	return c.Etcd.External.Endpoints, nil
}

// setConfigEtcdEndpoints replaces the list under etcd.external.endpoints,
// line by line, so the rest of the text stays as kubeadm wrote it.
func setConfigEtcdEndpoints(cc string, want []string) (string, error) {
	lines := strings.Split(cc, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		out = append(out, l)
		if strings.TrimSpace(l) != "endpoints:" {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
		item := indent // kubeadm writes list items at the key's indent
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], indent) && strings.HasPrefix(strings.TrimLeft(lines[i+1], " "), "- ") {
			item = lines[i+1][:len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " "))]
			i++
		}
		for _, u := range want {
			out = append(out, item+"- "+u)
		}
	}
	edited := strings.Join(out, "\n")
	got, err := configEtcdEndpoints(edited)
	if err != nil || !slices.Equal(got, want) {
		return "", fmt.Errorf("kubeadm's ClusterConfiguration: could not set etcd.external.endpoints to %v (got %v, %v): edit kube-system/kubeadm-config by hand", want, got, err)
	}
	return edited, nil
}
