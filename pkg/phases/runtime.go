package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// Runtime installs containerd (with runc, the CNI plugins and crictl) on
// every Kubernetes node and imports the images the node needs into
// containerd's k8s.io namespace, offline.
type Runtime struct{}

const (
	containerdUnitPath = "/etc/systemd/system/containerd.service"
	imageDir           = "/var/lib/k4t/images"
	archiveDir         = "/var/lib/k4t/archives"
	runcPath           = "/usr/local/sbin/runc"
)

func (*Runtime) Name() string  { return "runtime" }
func (*Runtime) Title() string { return "Runtime: containerd, runc, CNI plugins, images (offline)" }

// kubeNodes are the hosts that run kubelet.
// workersOnly lists the workers that are not also masters (a master's own
// roll covers them).
func workersOnly(r *engine.Run) []*v1alpha1.Host {
	return slices.DeleteFunc(slices.Clone(r.Cluster.Workers()), func(w *v1alpha1.Host) bool { return w.HasRole(v1alpha1.RoleMaster) })
}

func kubeNodes(r *engine.Run) []*v1alpha1.Host {
	var out []*v1alpha1.Host
	for _, h := range engine.AllHosts(r) {
		if h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker) {
			out = append(out, h)
		}
	}
	return out
}

func (*Runtime) Hosts(r *engine.Run) []*v1alpha1.Host { return kubeNodes(r) }

// imagesFor lists the image artifacts a node needs.
func imagesFor(h *v1alpha1.Host) []string {
	imgs := []string{"pause-image", "kube-proxy-image", "coredns-image"}
	if h.HasRole(v1alpha1.RoleMaster) {
		imgs = append(imgs, "kube-apiserver-image", "kube-controller-manager-image", "kube-scheduler-image")
	}
	return imgs
}

func systemdCgroup(c *v1alpha1.Cluster) bool {
	return c.Spec.Kubernetes.Kubelet.CgroupDriver != "cgroupfs"
}

func (p *Runtime) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	c := r.Cluster
	cs := engine.NewChanges(hc, p.Name())
	// The binaries, the config and the unit, planned with one round trip.
	var files []engine.PlannedFile
	bins := []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl"}
	for _, name := range bins {
		f, err := artifactFile(ctx, r, name)
		if err != nil {
			return nil, err
		}
		files = append(files, engine.PlannedFile{File: f, Opts: engine.FileOpts{Binary: true}})
	}
	pause, err := r.Options.Artifacts.Manifest().Get("pause-image")
	if err != nil {
		return nil, err
	}
	hosts, err := registryHostsFiles(c)
	if err != nil {
		return nil, err
	}
	in := templates.ContainerdInput{
		SandboxImage: pause.Image, RuncPath: runcPath, SystemdCgroup: systemdCgroup(c),
		RestrictOOMScoreAdj: c.Spec.Kubernetes.Containerd.RestrictOOMScoreAdj,
	}
	if len(hosts) > 0 {
		in.RegistryConfigPath = templates.RegistryHostsDir
	}
	conf, err := templates.ContainerdConfig(in)
	if err != nil {
		return nil, err
	}
	unit, err := templates.ContainerdUnit(templates.ContainerdUnitInput{})
	if err != nil {
		return nil, err
	}
	files = append(files,
		engine.PlannedFile{File: transport.File{Path: templates.ContainerdConfigPath, Mode: 0o644, Content: conf}},
		engine.PlannedFile{File: transport.File{Path: containerdUnitPath, Mode: 0o644, Content: unit}})
	files = append(files, hosts...) // read at each pull: no restart
	fileChanges, err := engine.FileChanges(ctx, hc, p.Name(), files...)
	if err != nil {
		return nil, err
	}
	binChanged := false
	for _, c := range fileChanges[:len(bins)] {
		binChanged = binChanged || c != nil
	}
	confChanged, unitChanged := fileChanges[len(bins)] != nil, fileChanges[len(bins)+1] != nil
	cs.Add(fileChanges[:len(bins)]...)
	cni, err := archiveChanges(ctx, hc, p.Name(), "cni-plugins")
	if err != nil {
		return nil, err
	}
	cs.Add(cni...)
	cs.Add(fileChanges[len(bins):]...) // config, unit, hosts.toml files
	stale, err := staleRegistryHosts(ctx, hc, p.Name(), hosts)
	if err != nil {
		return nil, err
	}
	cs.Add(stale...)
	units, err := engine.UnitChanges(ctx, hc, engine.Unit{Name: "containerd", UnitFileChanged: unitChanged, ConfigChanged: confChanged || binChanged})
	if err != nil {
		return nil, err
	}
	cs.Add(units...)
	imgs, err := p.imageChanges(ctx, hc)
	if err != nil {
		return nil, err
	}
	cs.Add(imgs...)
	return cs.List, nil
}

// registryHostsFiles are containerd's hosts.toml files for
// spec.registry.mirrors, by registry, so every pull on the node (workloads'
// included) goes through the mirrors.
func registryHostsFiles(c *v1alpha1.Cluster) ([]engine.PlannedFile, error) {
	var out []engine.PlannedFile
	for _, reg := range slices.Sorted(maps.Keys(c.Spec.Registry.Mirrors)) {
		in := templates.RegistryHostsInput{Registry: reg, Mirrors: c.Spec.Registry.Mirrors[reg], CAs: map[string]string{}}
		// A mirror's CA (spec.registry.ca, by its host[:port]) beside the hosts.toml.
		for _, m := range in.Mirrors {
			u, err := url.Parse(m)
			if err != nil || u.Scheme != "https" || c.Spec.Registry.CA[u.Host] == "" {
				continue
			}
			pem, err := os.ReadFile(c.Spec.Registry.CA[u.Host])
			if err != nil {
				return nil, fmt.Errorf("spec.registry.ca %s: %w", u.Host, err)
			}
			remote := path.Join(templates.RegistryHostsDir, reg, strings.ReplaceAll(u.Host, ":", "_")+".crt")
			in.CAs[m] = remote
			out = append(out, engine.PlannedFile{File: transport.File{Path: remote, Mode: 0o644, Content: pem}})
		}
		b, err := templates.RegistryHosts(in)
		if err != nil {
			return nil, err
		}
		out = append(out, engine.PlannedFile{File: transport.File{Path: path.Join(templates.RegistryHostsDir, reg, "hosts.toml"), Mode: 0o644, Content: b}})
	}
	return out, nil
}

// staleRegistryHosts removes the hosts.toml files k4t wrote (its header says
// so) for registries spec.registry.mirrors no longer lists; a file without
// the header is someone else's and stays.
func staleRegistryHosts(ctx context.Context, hc *engine.HostCtx, phase string, keep []engine.PlannedFile) ([]*engine.Change, error) {
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "grep -l '^# Managed by k4t' " + templates.RegistryHostsDir + "/*/hosts.toml 2>/dev/null; true",
		Timeout: 30 * time.Second, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	var out []*engine.Change
	for _, f := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		if f == "" || slices.ContainsFunc(keep, func(k engine.PlannedFile) bool { return k.File.Path == f }) {
			continue
		}
		dir := path.Dir(f)
		c := engine.CommandChange(hc, phase, fmt.Sprintf("remove %s (spec.registry.mirrors no longer lists %s)", f, path.Base(dir)),
			"rm -f "+transport.ShellQuote(f)+" && { rmdir "+transport.ShellQuote(dir)+" 2>/dev/null || true; }")
		c.Key = "file:" + f
		out = append(out, c)
	}
	return out, nil
}

// imageChanges uploads each image tarball the node lacks in containerd and
// imports it. Tarballs stay on the node so a re-import needs no upload.
func (p *Runtime) imageChanges(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	present := map[string]bool{}
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "command -v ctr >/dev/null && ctr -n k8s.io images ls -q 2>/dev/null; true", Timeout: time.Minute, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Fields(string(res.Stdout)) {
		present[l] = true
	}
	var out []*engine.Change
	for _, name := range imagesFor(hc.Host) {
		a, err := r.Options.Artifacts.Manifest().Get(name)
		if err != nil {
			return nil, err
		}
		if present[a.Image] {
			continue
		}
		if r.Options.Artifacts.NodePulls() && a.Pulled() {
			c, err := nodePullChange(ctx, hc, p.Name(), name, a.Image)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
			continue
		}
		local, sum, err := r.Options.Artifacts.Resolve(ctx, name)
		if err != nil {
			return nil, err
		}
		remote := path.Join(imageDir, name+".tar")
		f := transport.File{Path: remote, Mode: 0o644, Source: local, SHA256: sum}
		ch, err := engine.FileChange(ctx, hc, p.Name(), f, engine.FileOpts{Binary: true})
		if err != nil {
			return nil, err
		}
		if ch != nil {
			out = append(out, ch)
		}
		imp := engine.CommandChange(hc, p.Name(), "import image "+a.Image,
			fmt.Sprintf("ctr -n k8s.io images import %s", transport.ShellQuote(remote)))
		imp.Key = "import:" + a.Image
		out = append(out, imp)
	}
	return out, nil
}

// nodePullChange has containerd on the node pull image (through the
// registry mirrors of its hosts.toml, as kubelet's pulls go) and checks that
// the tag gave the digest pinned on the bastion; another digest is removed
// again and refused.
func nodePullChange(ctx context.Context, hc *engine.HostCtx, phase, artifact, image string) (*engine.Change, error) {
	digest, err := hc.Run.Options.Artifacts.ImageDigest(ctx, artifact)
	if err != nil {
		return nil, engine.WrapPhase(phase, hc.Name(), err)
	}
	q := transport.ShellQuote(image)
	c := &engine.Change{Host: hc.Name(), Phase: phase, Kind: engine.KindCommand, Key: "pull:" + image,
		Desc: fmt.Sprintf("pull image %s on the node (digest %s)", image, digest),
		Apply: func(ctx context.Context, h transport.Host) error {
			res, err := h.Run(ctx, transport.Cmd{Command: crictl + " pull " + q + " >/dev/null && " + crictl + " inspecti -o json " + q, Timeout: 10 * time.Minute})
			if err != nil {
				return engine.Errorf(hc.Name(), phase, "check that "+hc.Name()+" reaches the registry or a mirror of spec.registry.mirrors",
					"pulling %s on the node: %v", image, err)
			}
			var info struct {
				Status struct {
					RepoDigests []string `json:"repoDigests"`
				} `json:"status"`
			}
			if err := json.Unmarshal(res.Stdout, &info); err != nil {
				return fmt.Errorf("reading crictl inspecti %s: %w", image, err)
			}
			for _, d := range info.Status.RepoDigests {
				if strings.HasSuffix(d, "@"+digest) {
					return nil
				}
			}
			_, _ = h.Run(ctx, transport.Cmd{Command: crictl + " rmi " + q + " >/dev/null 2>&1; true", Timeout: time.Minute})
			return engine.Errorf(hc.Name(), phase, "the registry (or a mirror) served another image than the one pinned for this cluster (artifact-pins.yaml in its state dir: delete its line there to take the new image)",
				"%s pulled on the node has digests %v, want %s; it was removed again", image, info.Status.RepoDigests, digest)
		}}
	return c, nil
}

// archiveChanges puts an archive artifact on the node and unpacks it into
// its install dir; a marker named after its sha256 says it was unpacked.
func archiveChanges(ctx context.Context, hc *engine.HostCtx, phase, name string) ([]*engine.Change, error) {
	r := hc.Run
	a, err := r.Options.Artifacts.Manifest().Get(name)
	if err != nil {
		return nil, err
	}
	local, sum, err := r.Options.Artifacts.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	if a.Kind != artifacts.KindArchive || a.Install == "" {
		return nil, fmt.Errorf("artifact %s: want an archive with an install dir", name)
	}
	remote := path.Join(archiveDir, a.FileName())
	marker := path.Join(a.Install, ".k4t-"+name+"-"+sum[:12])
	var out []*engine.Change
	ch, err := engine.FileChange(ctx, hc, phase, transport.File{Path: remote, Mode: 0o644, Source: local, SHA256: sum}, engine.FileOpts{Binary: true})
	if err != nil {
		return nil, err
	}
	fi, err := hc.Conn.Stat(ctx, marker)
	if err != nil {
		return nil, err
	}
	if ch != nil {
		out = append(out, ch)
	}
	if ch != nil || !fi.Exists {
		x := engine.CommandChange(hc, phase, fmt.Sprintf("unpack %s %s into %s", name, a.Version, a.Install),
			fmt.Sprintf("mkdir -p %[1]s && tar -xzf %[2]s -C %[1]s && touch %[3]s", transport.ShellQuote(a.Install), transport.ShellQuote(remote), transport.ShellQuote(marker)))
		x.Key = "unpack:" + name
		out = append(out, x)
	}
	return out, nil
}
