package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
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
	registry string // https://ADDR:port, its certificate signed by caFile's CA
	caFile   string // the registry's CA (PEM), for spec.registry.ca
	tr       http.RoundTripper
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
	// The registry has TLS from a CA of this test's own: the bastion and
	// the nodes trust it only through spec.registry.ca.
	caPEM, cert := privateCA(t, registryAddr)
	u.caFile = filepath.Join(u.dir, "registry-ca.crt")
	if err := os.WriteFile(u.caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	u.tr = tr
	l, err := net.Listen("tcp", registryAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}}))
	u.servers = append(u.servers, srv)
	u.registry = "https://" + l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, m := range built {
		if err := mirror.PushImages(ctx, strings.TrimPrefix(u.registry, "https://"), m, remote.WithTransport(u.tr)); err != nil {
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
	c.Spec.Registry = v1alpha1.Registry{Mirrors: map[string][]string{artifacts.KubernetesRegistry: {u.registry}},
		CA: map[string]string{strings.TrimPrefix(u.registry, "https://"): u.caFile}}
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
	dst, err := name.NewTag(strings.TrimPrefix(u.registry, "https://") + "/" + up.RepositoryStr() + ":" + up.TagStr())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img, remote.WithTransport(u.tr)); err != nil {
		t.Fatal(err)
	}
}

// privateCA makes a CA and, signed by it, a TLS certificate for the IP of
// addr (host:port).
func privateCA(t *testing.T, addr string) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "k4t e2e registry CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP(host)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
