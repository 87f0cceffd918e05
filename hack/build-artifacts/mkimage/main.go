// Command mkimage writes a container image as a docker-archive tarball
// without docker or a registry: an optional base rootfs tar as the first
// layer, then one layer holding the given files, and a linux/amd64 config.
// Used by hack/build-artifacts/build.sh; containerd imports the result with
// `ctr -n k8s.io images import`.
//
//	mkimage --out pause.tar --tag registry.k8s.io/pause:3.10.2 \
//	  --file bin/pause:/pause --entrypoint /pause --user 65535:65535
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(s string) error { *f = append(*f, s); return nil }

func main() {
	var files fileList
	out := flag.String("out", "", "docker-archive tarball to write")
	tag := flag.String("tag", "", "image reference, e.g. registry.k8s.io/pause:3.10.2")
	base := flag.String("base", "", "optional rootfs tar used as the first layer")
	entrypoint := flag.String("entrypoint", "", "entrypoint (one path)")
	user := flag.String("user", "", "user[:group] the image runs as")
	flag.Var(&files, "file", "SRC:DST, a local file copied into the image at DST (repeatable)")
	flag.Parse()
	if *out == "" || *tag == "" || len(files) == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkimage --out FILE --tag REF --file SRC:DST... [--base ROOTFS.tar] [--entrypoint PATH] [--user UID:GID]")
		os.Exit(2)
	}
	start := time.Now()
	if err := run(*out, *tag, *base, *entrypoint, *user, files); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	st, _ := os.Stat(*out)
	fmt.Printf("mkimage: %s -> %s (%d bytes, %.1fs)\n", *tag, *out, st.Size(), time.Since(start).Seconds())
}

func run(out, tag, base, entrypoint, user string, files []string) error {
	ref, err := name.NewTag(tag, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	var layers []v1.Layer
	if base != "" {
		l, err := tarball.LayerFromFile(base)
		if err != nil {
			return fmt.Errorf("base %s: %w", base, err)
		}
		layers = append(layers, l)
	}
	data, err := filesLayer(files)
	if err != nil {
		return err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return err
	}
	layers = append(layers, l)
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if entrypoint != "" {
		cf.Config.Entrypoint = []string{entrypoint}
	}
	cf.Config.User = user
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

// filesLayer is an uncompressed tar of the files (SRC:DST), their parent
// directories and /tmp, with zero timestamps so the digest depends only on
// the content.
func filesLayer(files []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"tmp": true}
	type entry struct{ src, dst string }
	var entries []entry
	for _, f := range files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok || !path.IsAbs(dst) {
			return nil, fmt.Errorf("--file %q: want SRC:/absolute/DST", f)
		}
		dst = strings.TrimPrefix(path.Clean(dst), "/")
		for d := path.Dir(dst); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		entries = append(entries, entry{src, dst})
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		b, err := os.ReadFile(e.src)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(e.src)
		if err != nil {
			return nil, err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.dst, Mode: int64(st.Mode().Perm()), Size: int64(len(b)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
