package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/artifacts/mirror"
)

// upstreamMirror serves, on loopback, what hack/build-artifacts built for
// the given versions the way their projects publish them: dl.k8s.io's and
// GitHub's release paths with their kinds of checksum files, and an OCI
// registry with the images under their registry.k8s.io names. Only the
// bastion (this machine) fetches from it. A GET can be cut half way, so a
// resumed download is proven on the way.
type upstreamMirror struct {
	dir      string
	files    string // http://127.0.0.1:port
	registry string // http://127.0.0.1:port
	fs       *mirror.FileServer
	servers  []*http.Server
}

// The registry listens on registryAddr (an address on the lab bridge, so
// the nodes' containerd reaches it through the hosts.toml k4t writes).
func startUpstreamMirror(t *testing.T, registryAddr string, versions ...string) *upstreamMirror {
	t.Helper()
	start := time.Now()
	root := os.Getenv("K4T_ARTIFACT_CACHE")
	u := &upstreamMirror{dir: t.TempDir()}
	var built []*artifacts.Manifest
	for _, v := range versions {
		m, err := artifacts.DefaultManifest(root, v, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := mirror.Write(u.dir, m, artifacts.DefaultVersions(v, ""), "amd64"); err != nil {
			t.Fatalf("mirror of %s: %v (run `make artifacts upgrade-artifacts`)", v, err)
		}
		built = append(built, m)
	}
	u.fs = mirror.NewFileServer(u.dir)
	u.files = u.serve(t, "127.0.0.1:0", u.fs)
	u.registry = u.serve(t, registryAddr, registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, m := range built {
		if err := mirror.PushImages(ctx, strings.TrimPrefix(u.registry, "http://"), m); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("FIGURE upstream-mirror: %s laid out and its images pushed in %s\n", strings.Join(versions, ", "), time.Since(start).Round(100*time.Millisecond))
	return u
}

func (u *upstreamMirror) serve(t *testing.T, addr string, h http.Handler) string {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	u.servers = append(u.servers, srv)
	return "http://" + l.Addr().String()
}

func (u *upstreamMirror) close() {
	for _, s := range u.servers {
		s.Close()
	}
}

// use sends c to this mirror for the upstream releases and registry.k8s.io.
func (u *upstreamMirror) use(c *v1alpha1.Cluster) {
	c.Spec.Artifacts = v1alpha1.Artifacts{Mirrors: map[string]string{
		artifacts.KubernetesReleases: u.files + "/dl.k8s.io",
		artifacts.GitHub:             u.files + "/github.com",
	}}
	c.Spec.Registry = v1alpha1.Registry{Mirrors: map[string][]string{artifacts.KubernetesRegistry: {u.registry}}}
}

// tamper replaces the mirror's copy of an upstream URL by one with a byte
// flipped (a new file: the mirror's files are links to the build cache),
// and returns what puts the original back.
func (u *upstreamMirror) tamper(t *testing.T, upstream string) (restore func()) {
	t.Helper()
	p := u.file(upstream)
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) {
		if err := os.WriteFile(p+".new", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	bad := append([]byte(nil), orig...)
	bad[len(bad)/3] ^= 1
	put(bad)
	return func() { put(orig) }
}

// file is the mirror's copy of an upstream URL.
func (u *upstreamMirror) file(upstream string) string {
	return filepath.Join(u.dir, filepath.FromSlash(upstream[strings.Index(upstream, "://")+3:]))
}

func (u *upstreamMirror) rangeRequests() []string { return u.fs.Ranges() }

// cut makes the next GET of the mirror's copy of upstream drop half way.
func (u *upstreamMirror) cut(upstream string) {
	u.fs.Cut("/" + upstream[strings.Index(upstream, "://")+3:])
}

// pushOnlyHere pushes the pause image of version's build under ref (a name
// registry.k8s.io does not have): a node can only pull it through the
// mirror.
func (u *upstreamMirror) pushOnlyHere(t *testing.T, version, ref string) {
	t.Helper()
	m, err := artifacts.DefaultManifest(os.Getenv("K4T_ARTIFACT_CACHE"), version, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Get("pause-image")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(m.LocalPath(a), nil)
	if err != nil {
		t.Fatal(err)
	}
	up, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.NewTag(strings.TrimPrefix(u.registry, "http://")+"/"+up.RepositoryStr()+":"+up.TagStr(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
}
