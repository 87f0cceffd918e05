package artifacts

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Export writes every artifact, checked, with a manifest of their sums; the
// tar unpacks once into a dir whose manifest verifies every file, and a
// changed file there is refused like any other.
func TestExportAndUseBundle(t *testing.T) {
	src := t.TempDir()
	bin, img := []byte("kubeadm binary"), []byte("an image archive")
	writeFile(t, filepath.Join(src, "bin/kubeadm"), bin)
	writeFile(t, filepath.Join(src, "images/pause.tar"), img)
	m := &Manifest{Version: "v1.37.2", Dir: src, Artifacts: []Artifact{
		{Name: "kubeadm", Version: "v1.37.2", Kind: KindBinary, Path: "bin/kubeadm", SHA256: sum(bin), Install: "/usr/local/bin/kubeadm", Mode: 0o700},
		{Name: "pause-image", Version: "3.10.2", Kind: KindImage, Path: "images/pause.tar", SHA256: sum(img), Image: "registry.k8s.io/pause:3.10.2"},
	}}
	var buf bytes.Buffer
	got, err := Export(context.Background(), NewStore(m, t.TempDir()), &buf)
	if err != nil || got.Artifacts != 2 || got.Bytes != int64(len(bin)+len(img)) {
		t.Fatalf("Export: %+v, %v", got, err)
	}
	tarPath := filepath.Join(t.TempDir(), "bundle.tar")
	writeFile(t, tarPath, buf.Bytes())
	cache := t.TempDir()
	dir, err := BundleDir(tarPath, cache)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := BundleDir(tarPath, cache); err != nil || again != dir {
		t.Errorf("second BundleDir: %q, %v (want the same dir, unpacked once)", again, err)
	}
	// Unpacked bundles do not pile up: the two most recently used stay.
	for i := range 3 {
		other := filepath.Join(t.TempDir(), "other.tar")
		writeFile(t, other, buf.Bytes())
		if _, err := BundleDir(other, cache); err != nil {
			t.Fatal(err)
		}
		if n, _ := filepath.Glob(filepath.Join(cache, "bundles", "*")); len(n) > 2 {
			t.Errorf("after %d more bundles: %d unpacked", i+1, len(n))
		}
	}
	dir, err = BundleDir(tarPath, cache) // pruned: unpacked anew
	if err != nil {
		t.Fatal(err)
	}
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if !strings.Contains(string(sums), sum(bin)+"  files/kubeadm/kubeadm\n") {
		t.Errorf("SHA256SUMS:\n%s", sums)
	}
	bm, err := Load(filepath.Join(dir, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := bm.Get("kubeadm")
	if a.Install != "/usr/local/bin/kubeadm" || a.FileMode() != 0o700 || a.URL != "" {
		t.Errorf("kubeadm in the bundle: %+v", a)
	}
	if p, _ := bm.Get("pause-image"); p.Image != "registry.k8s.io/pause:3.10.2" {
		t.Errorf("pause in the bundle: %+v", p)
	}
	s := NewStore(bm, t.TempDir())
	if errs := s.Verify(context.Background()); len(errs) != 0 {
		t.Fatalf("Verify: %v", errs)
	}
	writeFile(t, filepath.Join(dir, "files/kubeadm/kubeadm"), []byte("kubeadm binarY, changed"))
	if errs := NewStore(bm, t.TempDir()).Verify(context.Background()); len(errs) != 1 || !strings.Contains(errs[0].Error(), "kubeadm") {
		t.Errorf("Verify after a change: %v", errs)
	}
}

// A tar with an entry outside its dir, or without a manifest, is no bundle.
func TestBundleRefusesBadTars(t *testing.T) {
	for name, entries := range map[string][]string{
		"escapes":     {"manifest.yaml", "../evil"},
		"no manifest": {"files/x/x"},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			tw.WriteHeader(&tar.Header{Name: e, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
			tw.Write([]byte("x"))
		}
		tw.Close()
		p := filepath.Join(t.TempDir(), "b.tar")
		writeFile(t, p, buf.Bytes())
		cache := t.TempDir()
		if _, err := BundleDir(p, cache); err == nil {
			t.Errorf("%s: no error", name)
		}
		if left, _ := filepath.Glob(filepath.Join(cache, "bundles", "*")); len(left) != 0 {
			t.Errorf("%s: left %v", name, left)
		}
	}
}
