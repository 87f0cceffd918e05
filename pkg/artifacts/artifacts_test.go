package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAndGet(t *testing.T) {
	dir := t.TempDir()
	bin := []byte("#!/bin/sh\necho etcd\n")
	writeFile(t, filepath.Join(dir, "bin/etcd"), bin)
	mf := filepath.Join(dir, "manifest.yaml")
	writeFile(t, mf, []byte(`version: etcd-v3.6.16
artifacts:
- name: etcd
  version: v3.6.16
  kind: binary
  path: bin/etcd
  sha256: `+sum(bin)+`
  install: /usr/local/bin/etcd
  mode: "0700"
- name: pause-image
  version: "3.10.2"
  kind: image
  url: https://example.invalid/pause.tar
  sha256: `+strings.Repeat("a", 64)+`
  image: registry.k8s.io/pause:3.10.2
`))
	m, err := Load(mf)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Get("etcd")
	if err != nil {
		t.Fatal(err)
	}
	if a.FileMode() != 0o700 || a.Install != "/usr/local/bin/etcd" {
		t.Errorf("etcd: mode %o install %q", a.FileMode(), a.Install)
	}
	if got := m.LocalPath(a); got != filepath.Join(dir, "bin/etcd") {
		t.Errorf("LocalPath = %q", got)
	}
	if _, err := m.Get("kubelet"); err == nil || !strings.Contains(err.Error(), "etcd, pause-image") {
		t.Errorf("Get(kubelet) error should list what the manifest has, got %v", err)
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"bad sha":      {"artifacts:\n- {name: a, kind: binary, path: a, sha256: abc, install: /a}\n", "64 lowercase hex"},
		"no source":    {"artifacts:\n- {name: a, kind: binary, sha256: " + strings.Repeat("0", 64) + ", install: /a}\n", "exactly one of url and path"},
		"both sources": {"artifacts:\n- {name: a, kind: binary, path: a, url: 'http://x/a', sha256: " + strings.Repeat("0", 64) + ", install: /a}\n", "exactly one of url and path"},
		"bad kind":     {"artifacts:\n- {name: a, kind: deb, path: a, sha256: " + strings.Repeat("0", 64) + "}\n", `kind "deb"`},
		"dup":          {"artifacts:\n- {name: a, kind: archive, path: a, sha256: " + strings.Repeat("0", 64) + "}\n- {name: a, kind: archive, path: b, sha256: " + strings.Repeat("0", 64) + "}\n", "listed twice"},
		"no install":   {"artifacts:\n- {name: a, kind: binary, path: a, sha256: " + strings.Repeat("0", 64) + "}\n", "needs install"},
		"no image":     {"artifacts:\n- {name: a, kind: image, path: a, sha256: " + strings.Repeat("0", 64) + "}\n", "needs image"},
		"decimal mode": {"artifacts:\n- {name: a, kind: binary, path: a, sha256: " + strings.Repeat("0", 64) + ", install: /a, mode: 755}\n", "quoted in octal"},
		"unknown key":  {"artifacts:\n- {name: a, kind: binary, path: a, sha: x}\n", "unknown field"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestResolveLocal(t *testing.T) {
	dir := t.TempDir()
	data := []byte("binary content")
	writeFile(t, filepath.Join(dir, "bin/x"), data)
	m := &Manifest{Dir: dir, Artifacts: []Artifact{
		{Name: "x", Version: "v1", Kind: KindBinary, Path: "bin/x", SHA256: sum(data), Install: "/usr/local/bin/x"},
		{Name: "wrong", Version: "v1", Kind: KindBinary, Path: "bin/x", SHA256: strings.Repeat("0", 64), Install: "/usr/local/bin/x"},
		{Name: "gone", Version: "v1", Kind: KindBinary, Path: "bin/gone", SHA256: strings.Repeat("0", 64), Install: "/usr/local/bin/gone"},
	}}
	s := NewStore(m, t.TempDir())
	ctx := context.Background()

	p, got, err := s.Resolve(ctx, "x")
	if err != nil || p != filepath.Join(dir, "bin/x") || got != sum(data) {
		t.Fatalf("Resolve(x) = %q, %q, %v", p, got, err)
	}

	_, _, err = s.Resolve(ctx, "wrong")
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Actual != sum(data) || ce.Expected != strings.Repeat("0", 64) {
		t.Fatalf("Resolve(wrong) = %v, want a ChecksumError", err)
	}
	for _, w := range []string{"wrong v1", sum(data), strings.Repeat("0", 64), "build.sh"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("checksum error %q should mention %q", err, w)
		}
	}

	if _, _, err = s.Resolve(ctx, "gone"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Resolve(gone) = %v", err)
	}

	// A file changed after it was verified is caught on the next use.
	writeFile(t, filepath.Join(dir, "bin/x"), []byte("tampered, longer content"))
	if _, _, err = s.Resolve(ctx, "x"); !errors.As(err, &ce) {
		t.Errorf("Resolve after tampering = %v, want a ChecksumError", err)
	}

	if errs := s.Verify(ctx); len(errs) != 3 {
		t.Errorf("Verify: %d errors, want 3: %v", len(errs), errs)
	}
}

func TestResolveURL(t *testing.T) {
	good := []byte("an image tarball")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/pause.tar":
			_, _ = w.Write(good)
		case "/evil.tar":
			_, _ = w.Write([]byte("something else"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cache := t.TempDir()
	m := &Manifest{Source: "test.yaml", Artifacts: []Artifact{
		{Name: "pause-image", Kind: KindImage, URL: srv.URL + "/pause.tar", SHA256: sum(good), Image: "registry.k8s.io/pause:3.10.2"},
		{Name: "evil", Kind: KindImage, URL: srv.URL + "/evil.tar", SHA256: sum(good), Image: "x"},
		{Name: "missing", Kind: KindArchive, URL: srv.URL + "/nope.tgz", SHA256: sum(good)},
	}}
	ctx := context.Background()
	s := NewStore(m, cache, WithHTTPClient(srv.Client()))

	p, got, err := s.Resolve(ctx, "pause-image")
	if err != nil || got != sum(good) {
		t.Fatalf("Resolve = %q %q %v", p, got, err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(good) {
		t.Fatalf("cached file holds %q", b)
	}
	if !strings.HasPrefix(p, cache) {
		t.Errorf("%s is not under the cache dir %s", p, cache)
	}
	// Second use, and a new process (new store): served from the cache.
	if _, _, err := s.Resolve(ctx, "pause-image"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewStore(m, cache, WithHTTPClient(srv.Client())).Resolve(ctx, "pause-image"); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}

	// A corrupt cache entry is an error that says to delete it.
	writeFile(t, p, []byte("bit rot"))
	_, _, err = NewStore(m, cache, WithHTTPClient(srv.Client())).Resolve(ctx, "pause-image")
	var ce *ChecksumError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "delete "+p) {
		t.Errorf("corrupt cache: %v", err)
	}

	_, _, err = s.Resolve(ctx, "evil")
	if !errors.As(err, &ce) || ce.Actual != sum([]byte("something else")) {
		t.Errorf("evil download: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, sum(good))); len(ents) != 1 {
		t.Errorf("the bad download must not stay in the cache: %v", ents)
	}

	_, _, err = s.Resolve(ctx, "missing")
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "test.yaml") {
		t.Errorf("404: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := NewStore(m, t.TempDir(), WithHTTPClient(srv.Client())).Resolve(cctx, "pause-image"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestDefaultManifest(t *testing.T) {
	root := t.TempDir()
	etcd := []byte("etcd")
	writeFile(t, filepath.Join(root, "etcd-v3.6.16/bin/etcd"), etcd)
	writeFile(t, filepath.Join(root, "etcd-v3.6.16/manifest.yaml"), []byte(`version: etcd-v3.6.16
artifacts:
- {name: etcd, version: v3.6.16, kind: binary, path: bin/etcd, sha256: `+sum(etcd)+`, install: /usr/local/bin/etcd}
`))
	m, err := DefaultManifest(root, "v1.37.2", "v3.6.16")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := NewStore(m, t.TempDir()).Resolve(context.Background(), "etcd")
	if err != nil || p != filepath.Join(root, "etcd-v3.6.16/bin/etcd") {
		t.Fatalf("Resolve(etcd) = %q, %v", p, err)
	}
	_, err = m.Get("kubeadm")
	want := "kubeadm v1.37.2 not found in " + filepath.Join(root, "v1.37.2") + ": run `make artifacts` (or hack/build-artifacts/build.sh kubeadm)"
	if err == nil || err.Error() != want {
		t.Errorf("Get(kubeadm) = %v\nwant %s", err, want)
	}
	m, err = DefaultManifest(root, "v1.37.2", "v3.5.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err = m.Get("etcd"); err == nil || !strings.Contains(err.Error(), "etcd v3.5.0 not found") || !strings.Contains(err.Error(), "build.sh etcd") {
		t.Errorf("Get(etcd) = %v", err)
	}
}

func TestForManifestOrDir(t *testing.T) {
	if _, err := ForManifestOrDir("a.yaml", "dir", "", ""); err == nil {
		t.Error("both a file and a dir must be refused")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "manifest.yaml"), []byte("version: x\nartifacts: []\n"))
	m, err := ForManifestOrDir("", dir, "", "")
	if err != nil || m.Dir != dir || m.Version != "x" {
		t.Errorf("bundle dir: %+v, %v", m, err)
	}
	if vPrefix("1.37.2") != "v1.37.2" || vPrefix("v3.6.16") != "v3.6.16" || vPrefix("") != "" {
		t.Error("vPrefix")
	}
}

// TestBuildShManifest checks the contract with hack/build-artifacts: what its
// register function writes is what Load reads.
func TestBuildShManifest(t *testing.T) {
	lib, err := filepath.Abs("../../hack/build-artifacts/lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	data := []byte("kubelet")
	writeFile(t, filepath.Join(root, "v9.9.9/bin/kubelet"), data)
	writeFile(t, filepath.Join(root, "shared-v1/pause.tar"), []byte("image"))
	script := `set -euo pipefail; . "$1"
register "$K8S_DIR" kubelet v9.9.9 binary bin/kubelet /usr/local/bin/kubelet 0755
register "$K8S_DIR" pause-image 3.10.2 image ../shared-v1/pause.tar - - registry.k8s.io/pause:3.10.2
register "$K8S_DIR" kubelet v9.9.9 binary bin/kubelet /usr/local/bin/kubelet 0755`
	cmd := exec.Command("bash", "-c", script, "bash", lib)
	cmd.Env = append(os.Environ(), "K4T_ARTIFACT_CACHE="+root, "K8S_VERSION=v9.9.9")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh register: %v\n%s", err, out)
	}
	m, err := DefaultManifest(root, "v9.9.9", "v0")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Names(), ","); got != "kubelet,pause-image" {
		t.Fatalf("names %s", got)
	}
	if errs := NewStore(m, t.TempDir()).Verify(context.Background()); len(errs) > 0 {
		t.Fatal(errs)
	}
	img, _ := m.Get("pause-image")
	if img.Image != "registry.k8s.io/pause:3.10.2" || img.Install != "" || img.Path != filepath.Join(root, "shared-v1/pause.tar") {
		t.Errorf("pause-image: %+v", img)
	}
}
