package mirror

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"k4t.io/k4t/pkg/artifacts"
)

// built is a manifest like build.sh's, of small files and random images.
func built(t *testing.T, v artifacts.Versions) *artifacts.Manifest {
	t.Helper()
	dir := t.TempDir()
	m := &artifacts.Manifest{Version: v.Kubernetes, Dir: dir}
	for _, a := range artifacts.UpstreamManifest(v, "amd64").Artifacts {
		p := filepath.Join(dir, a.Name)
		b := artifacts.Artifact{Name: a.Name, Version: a.Version, Kind: a.Kind, Path: p, Install: a.Install, Image: a.Image}
		if a.Kind == artifacts.KindImage {
			img, err := random.Image(512, 2)
			if err != nil {
				t.Fatal(err)
			}
			tag, _ := name.NewTag(a.Image)
			if err := tarball.WriteToFile(p, tag, img); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte(strings.Repeat(a.Name+" "+a.Version+"\n", 4000)), 0o755); err != nil {
			t.Fatal(err)
		}
		m.Artifacts = append(m.Artifacts, b)
	}
	return m
}

type servers struct {
	files, reg *httptest.Server
	fs         *FileServer
	dir        string
}

func serve(t *testing.T, m *artifacts.Manifest, v artifacts.Versions) *servers {
	t.Helper()
	s := &servers{dir: t.TempDir()}
	if err := Write(s.dir, m, v, "amd64"); err != nil {
		t.Fatal(err)
	}
	s.fs = NewFileServer(s.dir)
	s.files = httptest.NewServer(s.fs)
	t.Cleanup(s.files.Close)
	s.reg = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.reg.Close)
	if err := PushImages(context.Background(), strings.TrimPrefix(s.reg.URL, "http://"), m); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *servers) store(t *testing.T, v artifacts.Versions, pins *artifacts.Pins, cache string, opts ...artifacts.StoreOption) *artifacts.Store {
	return artifacts.NewStore(artifacts.UpstreamManifest(v, "amd64"), cache, append([]artifacts.StoreOption{
		artifacts.WithPins(pins),
		artifacts.WithMirrors(map[string]string{
			artifacts.KubernetesReleases: s.files.URL + "/dl.k8s.io",
			artifacts.GitHub:             s.files.URL + "/github.com/",
		}),
		artifacts.WithRegistryMirrors(map[string][]string{artifacts.KubernetesRegistry: {s.reg.URL}}),
		artifacts.WithRetries(3, 10*time.Millisecond)}, opts...)...)
}

// Every artifact of a release comes from the mirrors, checked against the
// checksum files beside it; binaries in archives come out whole; images
// are pulled for the arch; what was verified is pinned.
func TestUpstreamThroughMirrors(t *testing.T) {
	v := artifacts.DefaultVersions("v1.37.2", "")
	m := built(t, v)
	srv := serve(t, m, v)
	pinFile := filepath.Join(t.TempDir(), "pins.yaml")
	pins, _ := artifacts.LoadPins(pinFile)
	cache := t.TempDir()
	st := srv.store(t, v, pins, cache)
	ctx := context.Background()
	for _, a := range m.Artifacts {
		p, sum, err := st.Resolve(ctx, a.Name)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		if len(sum) != 64 {
			t.Errorf("%s: sum %q", a.Name, sum)
		}
		if a.Kind == artifacts.KindImage {
			want, _ := tarball.ImageFromPath(m.LocalPath(&a), nil)
			got, err := tarball.ImageFromPath(p, nil)
			if err != nil {
				t.Fatalf("%s: %v", a.Name, err)
			}
			wd, _ := want.Digest()
			gd, _ := got.Digest()
			if wd != gd {
				t.Errorf("%s: pulled %s, pushed %s", a.Name, gd, wd)
			}
			continue
		}
		want, _ := os.ReadFile(m.LocalPath(&a))
		got, _ := os.ReadFile(p)
		if a.Kind == artifacts.KindBinary && !bytes.Equal(got, want) {
			t.Errorf("%s: %s differs from what was built", a.Name, p)
		}
	}
	b, _ := os.ReadFile(pinFile)
	for _, want := range []string{
		"https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet: ",
		"https://github.com/etcd-io/etcd/releases/download/v3.6.16/etcd-v3.6.16-linux-amd64.tar.gz: ",
		"registry.k8s.io/pause:3.10.2@linux/amd64: sha256:",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("pins lack %q:\n%s", want, b)
		}
	}

	// A later run, same pins: the mirror now serves another kubelet, with
	// a checksum file that matches it. The pin wins.
	kubelet := filepath.Join(srv.dir, "dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet")
	os.WriteFile(kubelet, []byte("tampered"), 0o644)
	os.WriteFile(kubelet+".sha256", []byte("0c7bca0fb7c3e7a9f86e6bd1d42e1b4d3ecf0c7b2a5ed0bf2b39c7c3bda7e8c0\n"), 0o644)
	pins2, _ := artifacts.LoadPins(pinFile)
	_, _, err := srv.store(t, v, pins2, t.TempDir()).Resolve(ctx, "kubelet")
	var ce *artifacts.ChecksumError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), srv.files.URL+"/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet") {
		t.Errorf("a changed file on the mirror, pinned before: %v", err)
	}
}

// A tampered file (its project's checksum file unchanged) is refused with
// the URL and both sums, and nothing of it stays in the cache.
func TestTamperedRefused(t *testing.T) {
	v := artifacts.DefaultVersions("v1.36.3", "")
	m := built(t, v)
	srv := serve(t, m, v)
	kubeadm := filepath.Join(srv.dir, "dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubeadm")
	b, _ := os.ReadFile(kubeadm)
	b[10] ^= 1
	os.WriteFile(kubeadm, b, 0o644)
	cache := t.TempDir()
	_, _, err := srv.store(t, v, nil, cache).Resolve(context.Background(), "kubeadm")
	var ce *artifacts.ChecksumError
	if !errors.As(err, &ce) || ce.Expected == ce.Actual || !strings.Contains(err.Error(), ce.Expected) || !strings.Contains(err.Error(), ce.Actual) ||
		!strings.Contains(err.Error(), "/dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubeadm") || !strings.Contains(err.Error(), "nothing reached a host") {
		t.Fatalf("tampered kubeadm: %v", err)
	}
	filepath.Walk(cache, func(p string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() && !strings.HasSuffix(p, ".lock") {
			t.Errorf("left in the cache: %s", p)
		}
		return nil
	})
}

// A download cut half way resumes where it stopped (a Range request).
func TestCutDownloadResumes(t *testing.T) {
	v := artifacts.DefaultVersions("", "")
	m := built(t, v)
	srv := serve(t, m, v)
	u, _ := url.Parse(srv.files.URL + "/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubectl")
	srv.fs.Cut(u.Path)
	var done []artifacts.Progress
	st := artifacts.NewStore(artifacts.UpstreamManifest(v, "amd64"), t.TempDir(),
		artifacts.WithMirrors(map[string]string{artifacts.KubernetesReleases: srv.files.URL + "/dl.k8s.io"}),
		artifacts.WithRetries(2, 10*time.Millisecond),
		artifacts.WithProgress(func(p artifacts.Progress) {
			if p.Done {
				done = append(done, p)
			}
		}))
	p, _, err := st.Resolve(context.Background(), "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(m.LocalPath(&m.Artifacts[2]))
	if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
		t.Errorf("resumed kubectl differs from the original")
	}
	if rs := srv.fs.Ranges(); len(rs) != 1 || !strings.Contains(rs[0], fmt.Sprintf("bytes=%d-", len(want)/2)) {
		t.Errorf("range requests: %v, want one from byte %d", rs, len(want)/2)
	}
	if len(done) != 1 || done[0].Resumed != int64(len(want)/2) || done[0].Bytes != int64(len(want)) {
		t.Errorf("progress at the end: %+v", done)
	}
}

// Runs of k4t for different clusters share the download cache: several
// stores fetching the same files at once all get them whole, once.
func TestSharedCacheConcurrent(t *testing.T) {
	v := artifacts.DefaultVersions("", "")
	m := built(t, v)
	srv := serve(t, m, v)
	cache := t.TempDir()
	errs := make(chan error, 16)
	for range 4 {
		go func() {
			st := srv.store(t, v, nil, cache)
			for _, n := range []string{"kubelet", "etcd", "etcdctl", "containerd"} {
				_, _, err := st.Resolve(context.Background(), n)
				errs <- err
			}
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// With the nodes pulling (spec.registry.pull: nodes), Fetch downloads the
// files but no image: it pins each image tag's digest, asked of the mirror,
// which is what a pull of the tag gets.
func TestNodePullsPinDigestsOnly(t *testing.T) {
	v := artifacts.DefaultVersions("v1.37.2", "")
	m := built(t, v)
	srv := serve(t, m, v)
	pinFile := filepath.Join(t.TempDir(), "pins.yaml")
	pins, _ := artifacts.LoadPins(pinFile)
	cache := t.TempDir()
	st := srv.store(t, v, pins, cache, artifacts.WithNodePulls(true))
	if errs := st.Fetch(context.Background()); len(errs) != 0 {
		t.Fatal(errs)
	}
	if imgs, _ := filepath.Glob(filepath.Join(cache, "images", "*")); len(imgs) != 0 {
		t.Errorf("images pulled on the bastion: %v", imgs)
	}
	d, err := st.ImageDigest(context.Background(), "pause-image")
	if err != nil {
		t.Fatal(err)
	}
	pause, _ := m.Get("pause-image")
	img, _ := tarball.ImageFromPath(m.LocalPath(pause), nil)
	if want, _ := img.Digest(); d != want.String() {
		t.Errorf("pinned %s, pushed %s", d, want)
	}
	if b, _ := os.ReadFile(pinFile); !strings.Contains(string(b), "registry.k8s.io/pause:3.10.2: "+d) {
		t.Errorf("pins:\n%s", b)
	}
}

// A registry mirror with a TLS certificate of a private CA: pulls through
// it need that CA (spec.registry.ca), and fail without it.
func TestRegistryMirrorWithPrivateCA(t *testing.T) {
	v := artifacts.DefaultVersions("v1.37.2", "")
	m := built(t, v)
	reg := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "https://")
	if err := PushImages(context.Background(), host, m, remote.WithTransport(reg.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: reg.Certificate().Raw})
	mirrors := artifacts.WithRegistryMirrors(map[string][]string{artifacts.KubernetesRegistry: {reg.URL}})
	pins, _ := artifacts.LoadPins("")
	with := artifacts.NewStore(artifacts.UpstreamManifest(v, "amd64"), t.TempDir(), artifacts.WithPins(pins), mirrors, artifacts.WithCAs(ca))
	if _, _, err := with.Resolve(context.Background(), "pause-image"); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	pins2, _ := artifacts.LoadPins("")
	without := artifacts.NewStore(artifacts.UpstreamManifest(v, "amd64"), t.TempDir(), artifacts.WithPins(pins2), mirrors)
	if _, err := without.ImageDigest(context.Background(), "pause-image"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v", err)
	}
}
