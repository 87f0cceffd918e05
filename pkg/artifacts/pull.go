package artifacts

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// pull fetches an image artifact from its registry (its mirrors first) for
// the manifest's arch into an image archive in the cache, named by the
// image's upstream reference so containerd imports it under that name. The
// digest is pinned: a later pull takes that digest, and a cached archive is
// checked against the sum written beside it.
func (s *Store) pull(ctx context.Context, a *Artifact) (string, string, error) {
	arch := cmp.Or(s.manifest.Arch, "amd64")
	tag, err := name.NewTag(a.Image)
	if err != nil {
		return "", "", fmt.Errorf("artifact %s: image %q: %w", label(a), a.Image, err)
	}
	key := a.Image + "@linux/" + arch
	pinned := s.pins.Get(key)
	if pinned != "" {
		if p, sum, ok := s.cachedImage(a, pinned); ok {
			return p, sum, nil
		}
	}
	start := time.Now()
	var errs []string
	for _, repo := range s.repos(tag.Context()) {
		var ref name.Reference = repo.Tag(tag.TagStr())
		if pinned != "" {
			ref = repo.Digest(pinned)
		}
		img, err := remote.Image(ref, s.remoteOpts(ctx, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))...)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ref, err))
			continue
		}
		d, err := img.Digest()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ref, err))
			continue
		}
		if pinned != "" && d.String() != pinned {
			return "", "", &ChecksumError{Artifact: label(a), File: ref.String(), Expected: pinned, Actual: d.String(), By: "the digest pinned for this cluster (artifact-pins.yaml in its state dir: delete its line there to take the new image)",
				Fix: "the registry served another image than the one pinned for this cluster; nothing reached a host"}
		}
		dir := filepath.Join(s.cache(), "images", d.Hex)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", fmt.Errorf("artifact %s: download cache: %w", label(a), err)
		}
		tmp, err := os.CreateTemp(dir, ".pull-*")
		if err != nil {
			return "", "", fmt.Errorf("artifact %s: download cache: %w", label(a), err)
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if err := tarball.WriteToFile(tmp.Name(), tag, img); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ref, err))
			continue
		}
		sum, err := FileSHA256(tmp.Name())
		if err != nil {
			return "", "", fmt.Errorf("artifact %s: %w", label(a), err)
		}
		dest := filepath.Join(dir, a.Name+".tar")
		if err := os.Chmod(tmp.Name(), 0o644); err != nil {
			return "", "", err
		}
		if err := os.Rename(tmp.Name(), dest); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(dest+".sha256", []byte(sum+"\n"), 0o644); err != nil {
			return "", "", err
		}
		if err := s.pins.Set(key, d.String()); err != nil {
			return "", "", fmt.Errorf("artifact %s: %w", label(a), err)
		}
		st, _ := os.Stat(dest)
		s.report(Progress{Artifact: label(a), From: ref.String(), Bytes: st.Size(), Total: st.Size(), Elapsed: time.Since(start), Done: true})
		slog.Info("image pulled", "artifact", a.Name, "from", ref.String(), "digest", d.String(), "took", time.Since(start))
		return dest, sum, nil
	}
	return "", "", fmt.Errorf("artifact %s: pulling %s for linux/%s: %s (check the network, or set spec.registry.mirrors)", label(a), a.Image, arch, strings.Join(errs, "; "))
}

// cachedImage is the archive of a pinned image in the cache, when its sum
// file is there and the archive matches it.
func (s *Store) cachedImage(a *Artifact, digest string) (string, string, bool) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		return "", "", false
	}
	p := filepath.Join(s.cache(), "images", h, a.Name+".tar")
	b, err := os.ReadFile(p + ".sha256")
	if err != nil {
		return "", "", false
	}
	sum := strings.TrimSpace(string(b))
	if err := s.check(a, p, sum, ""); err != nil {
		slog.Warn("cached image archive changed; pulling it again", "artifact", a.Name, "file", p, "err", err)
		return "", "", false
	}
	return p, sum, true
}

// repos are where an image of repo is pulled from: the registry's mirrors
// in order, then the registry itself.
func (s *Store) repos(repo name.Repository) []name.Repository {
	var out []name.Repository
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry { // index.docker.io, which users write docker.io
		reg = "docker.io"
	}
	for _, m := range s.registry[reg] {
		u, err := url.Parse(m)
		if err != nil || u.Host == "" {
			continue
		}
		var opts []name.Option
		if u.Scheme == "http" {
			opts = append(opts, name.Insecure)
		}
		r, err := name.NewRepository(u.Host+"/"+repo.RepositoryStr(), opts...)
		if err == nil {
			out = append(out, r)
		}
	}
	return append(out, repo)
}

// ImageDigest is the digest the named image's tag points to (a multi-arch
// index or a manifest), as its registry (mirrors first) says, pinned on
// first use: what a node's pull of the tag must get (spec.registry.pull:
// nodes). Nothing is downloaded but the manifest's descriptor.
func (s *Store) ImageDigest(ctx context.Context, artifact string) (string, error) {
	a, err := s.manifest.Get(artifact)
	if err != nil {
		return "", err
	}
	if !a.Pulled() {
		return "", fmt.Errorf("artifact %s: not pulled from a registry (it is a local file)", label(a))
	}
	defer s.lock(a.Image)()
	if p := s.pins.Get(a.Image); p != "" {
		return p, nil
	}
	tag, err := name.NewTag(a.Image)
	if err != nil {
		return "", fmt.Errorf("artifact %s: image %q: %w", label(a), a.Image, err)
	}
	var errs []string
	for _, repo := range s.repos(tag.Context()) {
		ref := repo.Tag(tag.TagStr())
		d, err := remote.Head(ref, s.remoteOpts(ctx)...)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ref, err))
			continue
		}
		if err := s.pins.Set(a.Image, d.Digest.String()); err != nil {
			return "", fmt.Errorf("artifact %s: %w", label(a), err)
		}
		slog.Info("image digest pinned", "artifact", a.Name, "from", ref.String(), "digest", d.Digest.String())
		return d.Digest.String(), nil
	}
	return "", fmt.Errorf("artifact %s: asking for %s's digest: %s (check the network, or set spec.registry.mirrors)", label(a), a.Image, strings.Join(errs, "; "))
}

// remoteOpts are the registry client's options: ctx, the store's transport.
func (s *Store) remoteOpts(ctx context.Context, more ...remote.Option) []remote.Option {
	opts := append([]remote.Option{remote.WithContext(ctx)}, more...)
	if s.client.Transport != nil {
		opts = append(opts, remote.WithTransport(s.client.Transport))
	}
	return opts
}
