package artifacts

import (
	"fmt"
	"strings"
)

// Versions are the releases of everything a cluster runs, for one
// Kubernetes version.
type Versions struct {
	Kubernetes, Etcd, Containerd, Runc, CNIPlugins, Crictl, Pause, CoreDNS string
}

// DefaultVersions are the releases k4t installs beside a Kubernetes version
// and an etcd version (empty: the defaults): the same as
// hack/build-artifacts/lib.sh builds, so the lab's build and the upstream
// releases install the same things.
func DefaultVersions(k8s, etcd string) Versions {
	k8s, etcd = vPrefix(k8s), vPrefix(etcd)
	if k8s == "" {
		k8s = DefaultK8sVersion
	}
	if etcd == "" {
		etcd = DefaultEtcdVersion
	}
	v := Versions{Kubernetes: k8s, Etcd: etcd, Containerd: "v2.2.9", Runc: "v1.5.2", CNIPlugins: "v1.9.1",
		Crictl: "v1.36.0", Pause: "3.10.2", CoreDNS: "v1.14.6"}
	if strings.HasPrefix(k8s, "v1.36.") {
		v.CoreDNS = "v1.14.2"
	}
	return v
}

// Upstream bases: the official release locations. spec.artifacts.mirrors
// maps these to a mirror.
const (
	KubernetesReleases = "https://dl.k8s.io"
	GitHub             = "https://github.com"
	KubernetesRegistry = "registry.k8s.io"
)

// UpstreamManifest lists the artifacts of v for linux/arch from where their
// projects publish them. No sum is written in it: each file is checked
// against the checksum file its project publishes beside it (SumURL), and
// each image is pulled from its registry; the Store pins what it verified.
func UpstreamManifest(v Versions, arch string) *Manifest {
	m := &Manifest{Version: v.Kubernetes, Source: "upstream releases (" + v.Kubernetes + ", linux/" + arch + ")"}
	add := func(a Artifact) { m.Artifacts = append(m.Artifacts, a) }
	for _, b := range []string{"kubeadm", "kubelet", "kubectl"} {
		u := fmt.Sprintf("%s/release/%s/bin/linux/%s/%s", KubernetesReleases, v.Kubernetes, arch, b)
		add(Artifact{Name: b, Version: v.Kubernetes, Kind: KindBinary, URL: u, SumURL: u + ".sha256", Install: "/usr/local/bin/" + b})
	}
	gh := func(repo, version, file string) string {
		return fmt.Sprintf("%s/%s/releases/download/%s/%s", GitHub, repo, version, file)
	}
	etcdDir := fmt.Sprintf("etcd-%s-linux-%s", v.Etcd, arch)
	etcdTar := gh("etcd-io/etcd", v.Etcd, etcdDir+".tar.gz")
	for _, b := range []string{"etcd", "etcdctl", "etcdutl"} {
		add(Artifact{Name: b, Version: v.Etcd, Kind: KindBinary, URL: etcdTar, SumURL: gh("etcd-io/etcd", v.Etcd, "SHA256SUMS"),
			Member: etcdDir + "/" + b, Install: "/usr/local/bin/" + b})
	}
	ctrTar := gh("containerd/containerd", v.Containerd, fmt.Sprintf("containerd-%s-linux-%s.tar.gz", strings.TrimPrefix(v.Containerd, "v"), arch))
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
		add(Artifact{Name: b, Version: v.Containerd, Kind: KindBinary, URL: ctrTar, SumURL: ctrTar + ".sha256sum",
			Member: "bin/" + b, Install: "/usr/local/bin/" + b})
	}
	add(Artifact{Name: "runc", Version: v.Runc, Kind: KindBinary, URL: gh("opencontainers/runc", v.Runc, "runc."+arch),
		SumURL: gh("opencontainers/runc", v.Runc, "runc.sha256sum"), Install: "/usr/local/sbin/runc"})
	cni := gh("containernetworking/plugins", v.CNIPlugins, fmt.Sprintf("cni-plugins-linux-%s-%s.tgz", arch, v.CNIPlugins))
	add(Artifact{Name: "cni-plugins", Version: v.CNIPlugins, Kind: KindArchive, URL: cni, SumURL: cni + ".sha256", Install: "/opt/cni/bin"})
	crictl := gh("kubernetes-sigs/cri-tools", v.Crictl, fmt.Sprintf("crictl-%s-linux-%s.tar.gz", v.Crictl, arch))
	add(Artifact{Name: "crictl", Version: v.Crictl, Kind: KindBinary, URL: crictl, SumURL: crictl + ".sha256", Member: "crictl", Install: "/usr/local/bin/crictl"})
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		add(Artifact{Name: c + "-image", Version: v.Kubernetes, Kind: KindImage, Image: KubernetesRegistry + "/" + c + ":" + v.Kubernetes})
	}
	add(Artifact{Name: "pause-image", Version: v.Pause, Kind: KindImage, Image: KubernetesRegistry + "/pause:" + v.Pause})
	add(Artifact{Name: "coredns-image", Version: v.CoreDNS, Kind: KindImage, Image: KubernetesRegistry + "/coredns/coredns:" + v.CoreDNS})
	m.Arch = arch
	return m
}
