package artifacts

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k4t.io/k4t/pkg/apis/v1alpha1"
)

// Versions that hack/build-artifacts/build.sh builds by default.
const (
	DefaultK8sVersion  = "v1.37.2"
	DefaultEtcdVersion = "v3.6.16"
)

// DefaultCacheRoot is where build.sh puts what it builds:
// $K4T_ARTIFACT_CACHE, else /var/cache/k4t/artifacts.
func DefaultCacheRoot() string {
	if d := os.Getenv("K4T_ARTIFACT_CACHE"); d != "" {
		return d
	}
	return "/var/cache/k4t/artifacts"
}

// buildPiece maps an artifact name to the build.sh argument that makes it.
var buildPiece = map[string]string{
	"etcd": "etcd", "etcdctl": "etcd", "etcdutl": "etcd", "etcd-image": "images",
	"kubeadm": "kubeadm", "kubelet": "k8s", "kubectl": "k8s", "kube-apiserver": "k8s",
	"kube-controller-manager": "k8s", "kube-scheduler": "k8s", "kube-proxy": "k8s",
	"containerd": "containerd", "containerd-shim-runc-v2": "containerd", "ctr": "containerd",
	"runc": "runc", "cni-plugins": "cni", "crictl": "crictl",
	"pause-image": "images", "kube-apiserver-image": "images", "kube-controller-manager-image": "images",
	"kube-scheduler-image": "images", "kube-proxy-image": "images", "coredns-image": "images",
}

// DefaultManifest merges the manifests build.sh wrote for one Kubernetes
// release (cacheRoot/<k8sVersion>/manifest.yaml) and one etcd release
// (cacheRoot/etcd-<etcdVersion>/manifest.yaml), so the lab works with no
// configuration. Either may be absent: asking the result for an artifact
// that is not there returns an error naming the command that builds it.
// Empty arguments take the defaults. Paths in the result are absolute.
func DefaultManifest(cacheRoot, k8sVersion, etcdVersion string) (*Manifest, error) {
	if cacheRoot == "" {
		cacheRoot = DefaultCacheRoot()
	}
	if k8sVersion == "" {
		k8sVersion = DefaultK8sVersion
	}
	if etcdVersion == "" {
		etcdVersion = DefaultEtcdVersion
	}
	out := &Manifest{Version: k8sVersion, Source: cacheRoot, missing: map[string]string{}}
	sets := []struct{ dir, version, piece string }{
		{filepath.Join(cacheRoot, "etcd-"+etcdVersion), etcdVersion, "etcd"},
		{filepath.Join(cacheRoot, k8sVersion), k8sVersion, "all"},
	}
	for _, s := range sets {
		mf := filepath.Join(s.dir, "manifest.yaml")
		m, err := Load(mf)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, a := range m.Artifacts {
			if a.Path != "" {
				a.Path = m.LocalPath(&a)
			}
			out.Artifacts = append(out.Artifacts, a)
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("artifact manifests under %s: %w", cacheRoot, err)
	}
	for name, piece := range buildPiece {
		dir, version := filepath.Join(cacheRoot, k8sVersion), k8sVersion
		if piece == "etcd" {
			dir, version = filepath.Join(cacheRoot, "etcd-"+etcdVersion), etcdVersion
		}
		out.missing[name] = fmt.Sprintf("%s %s not found in %s: run `make artifacts` (or hack/build-artifacts/build.sh %s)", name, version, dir, piece)
	}
	out.missing[""] = fmt.Sprintf("not found in %s or %s: run `make artifacts` (or hack/build-artifacts/build.sh all)",
		filepath.Join(cacheRoot, k8sVersion), filepath.Join(cacheRoot, "etcd-"+etcdVersion))
	return out, nil
}

// ForManifestOrDir loads the manifest named by file, else dir/manifest.yaml,
// else (both empty) DefaultManifest for the given versions.
func ForManifestOrDir(file, dir, k8sVersion, etcdVersion string) (*Manifest, error) {
	switch {
	case file != "" && dir != "":
		return nil, fmt.Errorf("artifacts: set a manifest file or a bundle dir, not both (%s, %s)", file, dir)
	case file != "":
		return Load(file)
	case dir != "":
		return Load(filepath.Join(dir, "manifest.yaml"))
	}
	return DefaultManifest("", vPrefix(k8sVersion), vPrefix(etcdVersion))
}

// ForCluster returns the store for an inventory's spec.artifacts: an
// air-gap bundle (tar or dir), a manifest file, a bundle dir, what build.sh built for the inventory's
// versions (source: build), or by default the upstream releases (through
// spec.artifacts.mirrors and spec.registry.mirrors), downloaded into
// DefaultDownloadDir(). opts come after the inventory's own.
func ForCluster(c *v1alpha1.Cluster, opts ...StoreOption) (*Store, error) {
	a := c.Spec.Artifacts
	var m *Manifest
	var err error
	var cas [][]byte
	for _, server := range slices.Sorted(maps.Keys(c.Spec.Registry.CA)) {
		pem, err := os.ReadFile(c.Spec.Registry.CA[server])
		if err != nil {
			return nil, fmt.Errorf("spec.registry.ca %s: %w", server, err)
		}
		cas = append(cas, pem)
	}
	opts = append([]StoreOption{WithCAs(cas...)}, opts...)
	if a.Bundle != "" {
		dir, err := BundleDir(a.Bundle, DefaultDownloadDir())
		if err != nil {
			return nil, fmt.Errorf("spec.artifacts.bundle: %w", err)
		}
		if m, err = Load(filepath.Join(dir, bundleManifest)); err != nil {
			return nil, fmt.Errorf("spec.artifacts.bundle %s: %w", a.Bundle, err)
		}
		return NewStore(m, "", opts...), nil
	}
	if a.Manifest == "" && a.Dir == "" && a.Source != v1alpha1.ArtifactsBuild {
		m = UpstreamManifest(DefaultVersions(c.Spec.Kubernetes.Version, c.Spec.Etcd.Version), "amd64")
	} else if m, err = ForManifestOrDir(a.Manifest, a.Dir, c.Spec.Kubernetes.Version, c.Spec.Etcd.Version); err != nil {
		return nil, fmt.Errorf("spec.artifacts: %w", err)
	}
	opts = append([]StoreOption{WithMirrors(a.Mirrors), WithRegistryMirrors(c.Spec.Registry.Mirrors),
		WithNodePulls(c.Spec.Registry.Pull == v1alpha1.PullNodes)}, opts...)
	return NewStore(m, "", opts...), nil
}

func vPrefix(v string) string {
	if v == "" || strings.HasPrefix(v, "v") {
		return v
	}
	return "v" + v
}

// CachedVersions lists the Kubernetes artifact sets (v1.37.2, …) built
// under cacheRoot ("" for DefaultCacheRoot), each a dir with a manifest.
func CachedVersions(cacheRoot string) []string {
	if cacheRoot == "" {
		cacheRoot = DefaultCacheRoot()
	}
	ents, _ := os.ReadDir(cacheRoot)
	var out []string
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "v") {
			continue
		}
		if _, err := os.Stat(filepath.Join(cacheRoot, e.Name(), "manifest.yaml")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}
