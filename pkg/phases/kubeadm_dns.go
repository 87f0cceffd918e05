package phases

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// k4t pins CoreDNS's image tag in kubeadm's ClusterConfiguration (to the
// image it ships). `kubeadm upgrade` keeps a pinned tag, so without this
// the cluster kept the old CoreDNS after an upgrade, and a node added
// later, which gets only the target's images, could not start it (CI,
// 2026-12-02: coredns Pending on master4 after the upgrade to v1.37.2).

// dnsImageTag is the CoreDNS image tag of the run's artifacts ("" if none).
func dnsImageTag(r *engine.Run) string {
	a, err := r.Options.Artifacts.Manifest().Get("coredns-image")
	if err != nil {
		return ""
	}
	return a.Image[strings.LastIndex(a.Image, ":")+1:]
}

// dnsTagChange plans setting dns.imageTag in kube-system/kubeadm-config to
// the run's CoreDNS tag, before `kubeadm upgrade apply` reads it; nil when
// it is set already.
func dnsTagChange(ctx context.Context, hc *engine.HostCtx) (*engine.Change, error) {
	r := hc.Run
	want := dnsImageTag(r)
	if want == "" {
		return nil, nil
	}
	client, err := kubeClient(ctx, r)
	if err != nil {
		return nil, err
	}
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		return nil, engine.WrapPhase(upgradePhase, hc.Name(), fmt.Errorf("reading kube-system/kubeadm-config: %w", err))
	}
	have, err := configDNSTag(cm.Data["ClusterConfiguration"])
	if err != nil || have == want {
		return nil, engine.WrapPhase(upgradePhase, hc.Name(), err)
	}
	was := have
	if was == "" {
		was = "kubeadm's default"
	}
	return &engine.Change{Host: hc.Name(), Phase: upgradePhase, Kind: engine.KindCommand, Key: "kubeadm-config-dns-tag",
		Desc: fmt.Sprintf("set CoreDNS's image tag in kube-system/kubeadm-config to %s (was %s)", want, was),
		Apply: func(ctx context.Context, _ transport.Host) error {
			return editClusterConfiguration(ctx, client, func(cc string) (string, error) { return setConfigDNSTag(cc, want) })
		}}, nil
}

// configDNSTag reads dns.imageTag of a ClusterConfiguration.
func configDNSTag(cc string) (string, error) {
	var c struct {
		DNS struct {
			ImageTag string `json:"imageTag"`
		} `json:"dns"`
	}
	if err := yaml.Unmarshal([]byte(cc), &c); err != nil {
		return "", fmt.Errorf("reading kubeadm's ClusterConfiguration: %w", err)
	}
	return c.DNS.ImageTag, nil
}

// setConfigDNSTag sets dns.imageTag, line by line, so the rest of the text
// stays as kubeadm wrote it: `dns: {}` or a dns block without imageTag gets
// one; an imageTag in the block is replaced.
func setConfigDNSTag(cc, tag string) (string, error) {
	lines := strings.Split(cc, "\n")
	var out []string
	done := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case done:
			out = append(out, l)
		case l == "dns: {}":
			out = append(out, "dns:", "  imageTag: "+tag)
			done = true
		case l == "dns:":
			out = append(out, l)
			j := i + 1
			for ; j < len(lines) && strings.HasPrefix(lines[j], " "); j++ {
				if strings.HasPrefix(strings.TrimSpace(lines[j]), "imageTag:") {
					indent := lines[j][:len(lines[j])-len(strings.TrimLeft(lines[j], " "))]
					out = append(out, indent+"imageTag: "+tag)
					done = true
				} else {
					out = append(out, lines[j])
				}
			}
			if !done {
				out = append(out, "  imageTag: "+tag)
				done = true
			}
			i = j - 1
		default:
			out = append(out, l)
		}
	}
	if !done {
		out = append(out, "dns:", "  imageTag: "+tag)
	}
	edited := strings.Join(out, "\n")
	keys := 0 // a dns key this edit did not understand (CRLF, flow style) would make two
	for _, l := range out {
		if strings.HasPrefix(l, "dns:") {
			keys++
		}
	}
	if got, err := configDNSTag(edited); err != nil || got != tag || keys != 1 {
		return "", fmt.Errorf("kubeadm's ClusterConfiguration: could not set dns.imageTag to %s (got %q, %v): edit kube-system/kubeadm-config by hand", tag, got, err)
	}
	return edited, nil
}
