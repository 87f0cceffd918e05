package artifacts

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// An air-gap bundle is one tar: manifest.yaml (every artifact a file of the
// bundle, with its sha256), SHA256SUMS (the same sums, for sha256sum -c),
// and the files under files/<artifact>/. It is made on a machine that can
// reach the artifacts' sources (Export) and used where nothing can
// (spec.artifacts.bundle): the manifest's sums check every file before it
// reaches a host, as for any manifest.

const bundleManifest, bundleSums = "manifest.yaml", "SHA256SUMS"

// ExportSummary is what Export wrote.
type ExportSummary struct {
	Artifacts int
	Bytes     int64
}

// Export fetches and checks every artifact of s (as a run would) and writes
// them to w as a bundle.
func Export(ctx context.Context, s *Store, w io.Writer) (ExportSummary, error) {
	var sum ExportSummary
	if errs := s.Fetch(ctx); len(errs) > 0 {
		return sum, errors.Join(errs...)
	}
	out := Manifest{Version: s.manifest.Version, Arch: s.manifest.Arch}
	local := map[string]string{} // bundle path -> file on this machine
	var sums strings.Builder
	for i := range s.manifest.Artifacts {
		a := s.manifest.Artifacts[i]
		p, sha, err := s.resolve(ctx, &a)
		if err != nil {
			return sum, err
		}
		rel := path.Join("files", a.Name, filepath.Base(p))
		local[rel] = p
		out.Artifacts = append(out.Artifacts, Artifact{Name: a.Name, Version: a.Version, Kind: a.Kind, Path: rel,
			SHA256: sha, Install: a.Install, Mode: a.Mode, Image: a.Image})
		fmt.Fprintf(&sums, "%s  %s\n", sha, rel)
	}
	if err := out.Validate(); err != nil {
		return sum, fmt.Errorf("the bundle's manifest: %w", err)
	}
	mf, err := yaml.Marshal(out)
	if err != nil {
		return sum, err
	}
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
	}{{bundleManifest, mf}, {bundleSums, []byte(sums.String())}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return sum, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return sum, err
		}
	}
	for _, a := range out.Artifacts {
		n, err := addFile(tw, a.Path, local[a.Path])
		if err != nil {
			return sum, fmt.Errorf("artifact %s: %w", label(&a), err)
		}
		sum.Artifacts++
		sum.Bytes += n
	}
	return sum, tw.Close()
}

func addFile(tw *tar.Writer, name, src string) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg, ModTime: st.ModTime()}); err != nil {
		return 0, err
	}
	return io.Copy(tw, f)
}

// BundleDir is the directory of a bundle: p itself when it is a directory
// (an unpacked bundle), else the tar p unpacked once under
// cacheDir/bundles/, keyed by p's path, size and time. Only regular files
// with clean relative names are taken; anything else refuses the bundle.
func BundleDir(p, cacheDir string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	if st.IsDir() {
		return p, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	k := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", abs, st.Size(), st.ModTime().UnixNano()))
	dir := filepath.Join(cacheDir, "bundles", hex.EncodeToString(k[:8]))
	if _, err := os.Stat(filepath.Join(dir, bundleManifest)); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // used: pruning keeps it
		return dir, nil
	}
	pruneBundles(filepath.Dir(dir), keepBundles-1)
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := unpack(p, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("bundle %s: %w", p, err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(dir, bundleManifest)); serr == nil {
			return dir, nil // another run unpacked it first
		}
		return "", err
	}
	return dir, nil
}

// keepBundles is how many unpacked bundles stay in the download dir, the
// most recently used; each is as large as its tar.
const keepBundles = 2

// pruneBundles removes all but the keep most recently used unpacked bundles
// (and what an interrupted unpack left).
func pruneBundles(root string, keep int) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type used struct {
		path string
		at   time.Time
	}
	var dirs []used
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if strings.HasSuffix(e.Name(), ".partial") {
			os.RemoveAll(p)
			continue
		}
		if fi, err := e.Info(); err == nil && e.IsDir() {
			dirs = append(dirs, used{p, fi.ModTime()})
		}
	}
	slices.SortFunc(dirs, func(a, b used) int { return b.at.Compare(a.at) })
	for i := keep; i < len(dirs); i++ {
		os.RemoveAll(dirs[i].path)
	}
}

func unpack(src, dir string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("not a bundle tar: %w", err)
		}
		name := path.Clean(h.Name)
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if h.Typeflag != tar.TypeReg || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q: a bundle holds only regular files with relative names", h.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, bundleManifest)); err != nil {
		return fmt.Errorf("it has no %s", bundleManifest)
	}
	return nil
}
