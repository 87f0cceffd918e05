package lab

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"k4t.io/k4t/pkg/apis/v1alpha1"
)

// RoleFor derives a host's role from its name: slb*, master*, worker*, etcd*.
func RoleFor(name string) (v1alpha1.Role, error) {
	for _, r := range v1alpha1.Roles {
		if strings.HasPrefix(name, string(r)) {
			return r, nil
		}
	}
	return "", fmt.Errorf("lab: cannot tell the role of host %q from its name; name hosts slbN, masterN, workerN or etcdN", name)
}

// Inventory builds the k4t inventory for hosts: each host with its lab
// address, the role its name says and the lab key; the control plane
// endpoint is vip; kubeadm's SystemVerification preflight is ignored because
// lab hosts run on cgroup v1.
func Inventory(hosts []Host, keyFile, vip string) (*v1alpha1.Cluster, error) {
	c := &v1alpha1.Cluster{
		APIVersion: v1alpha1.APIVersion,
		Kind:       v1alpha1.Kind,
		Metadata:   v1alpha1.ObjectMeta{Name: "lab"},
	}
	for _, h := range hosts {
		r, err := RoleFor(h.Name)
		if err != nil {
			return nil, err
		}
		c.Spec.Hosts = append(c.Spec.Hosts, v1alpha1.Host{
			Name:    h.Name,
			Address: h.Address,
			Roles:   []v1alpha1.Role{r},
			SSH:     v1alpha1.SSH{KeyFile: keyFile},
		})
	}
	c.Spec.ControlPlaneEndpoint = v1alpha1.Endpoint{Address: vip}
	// VRRPv3 adverts every 200 ms: a dead VIP holder is replaced in under a
	// second (issue 16), and the failover tests measure it.
	c.Spec.LoadBalancer = v1alpha1.LoadBalancer{VRRPVersion: 3, AdvertInterval: v1alpha1.Duration{Duration: 200 * time.Millisecond}}
	c.Spec.Preflight = v1alpha1.Preflight{IgnoreErrors: []string{"SystemVerification"}}
	// The lab has no way out to the upstream releases: it installs what
	// hack/build-artifacts/build.sh built (make artifacts).
	c.Spec.Artifacts.Source = v1alpha1.ArtifactsBuild
	// What kubelet and containerd need inside an nspawn host on a cgroup v1
	// machine whose disk may be well used (docs/lab.md).
	no := false
	c.Spec.Kubernetes.Kubelet = v1alpha1.Kubelet{
		CgroupDriver:                "cgroupfs",
		FailCgroupV1:                &no,
		EvictionHard:                map[string]string{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
		ImageGCHighThresholdPercent: 100,
		ImageGCLowThresholdPercent:  99,
	}
	c.Spec.Kubernetes.Containerd = v1alpha1.Containerd{RestrictOOMScoreAdj: true}
	// /proc/sys is read-only in an nspawn host: kube-proxy must not set
	// nf_conntrack_max (before 1.37 it lowers it to its default).
	zero := 0
	c.Spec.Kubernetes.KubeProxy = v1alpha1.KubeProxy{ConntrackMaxPerCore: &zero}
	return c, nil
}

// inventoryHeader heads a written inventory.
const inventoryHeader = `# k4t inventory for the nspawn lab, written by ` + "`k4t lab up`" + `.
# Hosts, addresses and roles follow the lab's host names; the key is the lab's
# own (in the lab work dir). The VIP is held by the slb hosts once k4t has
# configured keepalived. SystemVerification is ignored and kubelet's settings
# relaxed because lab hosts are containers on a cgroup v1 machine.
`

// MarshalInventory renders c as the YAML a user would write.
func MarshalInventory(c *v1alpha1.Cluster) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(inventoryHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteInventory writes the inventory of the named lab hosts (all hosts when
// names is empty) to path.
func (l *Lab) WriteInventory(path string, names []string) error {
	all, err := l.Hosts()
	if err != nil {
		return err
	}
	hosts := all
	if len(names) > 0 {
		hosts = nil
		for _, n := range names {
			h, err := l.host(n)
			if err != nil {
				return err
			}
			hosts = append(hosts, h)
		}
	}
	c, err := Inventory(hosts, l.KeyFile(), l.VIP)
	if err != nil {
		return err
	}
	b, err := MarshalInventory(c)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, b, 0o644); err != nil {
		return fmt.Errorf("lab: writing inventory: %w", err)
	}
	return nil
}
