package artifacts

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ChecksumError is a file whose sha256 is not the one the manifest names.
type ChecksumError struct {
	Artifact string // name (and version)
	File     string // the local file that was checked
	Expected string
	Actual   string
	Fix      string
	// By names what gave Expected (default: the manifest).
	By string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("artifact %s: sha256 of %s is %s, %s expects %s: %s", e.Artifact, e.File, e.Actual, cmp.Or(e.By, "the manifest"), e.Expected, e.Fix)
}

// Store resolves artifacts of one manifest to local files with a verified
// sha256, downloading URL artifacts once into CacheDir. Safe for concurrent use.
type Store struct {
	manifest *Manifest
	client   *http.Client
	pins     *Pins
	mirrors  map[string]string   // upstream base URL -> mirror base URL
	registry map[string][]string // registry host -> mirror URLs
	progress func(Progress)
	// nodePulls: containerd on the nodes pulls images; the store only pins
	// each tag's digest (ImageDigest).
	nodePulls bool
	retries   int
	backoff   time.Duration

	cacheOnce sync.Once
	cacheDir  string // empty until first needed: DefaultDownloadDir()

	mu       sync.Mutex
	locks    map[string]*sync.Mutex // per URL (or image, or name): one download at a time
	verified map[string]fileKey     // local path -> what was hashed
}

// fileKey identifies a file's content cheaply: once a file has been hashed in
// this process, a later use rehashes it only if its size or mtime changed.
type fileKey struct {
	size  int64
	mtime time.Time
	sum   string
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithHTTPClient sets the client for downloads (default: http.DefaultClient
// with no overall timeout; the context bounds each download).
func WithHTTPClient(c *http.Client) StoreOption { return func(s *Store) { s.client = c } }

// WithPins keeps the sums read from checksum files and the image digests in
// p (default: in memory).
func WithPins(p *Pins) StoreOption { return func(s *Store) { s.pins = p } }

// WithMirrors fetches each URL below an upstream base (a key) from the
// mirror base (its value) instead.
func WithMirrors(m map[string]string) StoreOption { return func(s *Store) { s.mirrors = m } }

// WithRegistryMirrors pulls images of a registry (a key) from its mirrors
// first, in order.
func WithRegistryMirrors(m map[string][]string) StoreOption {
	return func(s *Store) { s.registry = m }
}

// WithCAs trusts, beside the system's CAs, those in the PEM blocks, for
// downloads and registry pulls (spec.registry.ca).
func WithCAs(pems ...[]byte) StoreOption {
	return func(s *Store) {
		if len(pems) == 0 {
			return
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, p := range pems {
			pool.AppendCertsFromPEM(p)
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool}
		s.client = &http.Client{Transport: t}
	}
}

// WithNodePulls leaves images to the nodes (spec.registry.pull: nodes):
// Fetch pins each image tag's digest instead of pulling it.
func WithNodePulls(on bool) StoreOption { return func(s *Store) { s.nodePulls = on } }

// NodePulls says whether the nodes pull the images.
func (s *Store) NodePulls() bool { return s.nodePulls }

// WithProgress calls f as downloads and pulls go on: every couple of
// seconds, and once at the end of each.
func WithProgress(f func(Progress)) StoreOption { return func(s *Store) { s.progress = f } }

// WithRetries sets how many times a failed download is tried again (from
// where it stopped), waiting backoff, then twice as long, between tries.
func WithRetries(n int, backoff time.Duration) StoreOption {
	return func(s *Store) { s.retries, s.backoff = n, backoff }
}

// NewStore returns a store for m that keeps downloads in cacheDir
// (DefaultDownloadDir(), chosen at the first URL artifact, when empty).
func NewStore(m *Manifest, cacheDir string, opts ...StoreOption) *Store {
	s := &Store{manifest: m, cacheDir: cacheDir, client: http.DefaultClient, retries: 4, backoff: time.Second,
		locks: map[string]*sync.Mutex{}, verified: map[string]fileKey{}}
	for _, o := range opts {
		o(s)
	}
	if s.pins == nil {
		s.pins, _ = LoadPins("")
	}
	return s
}

// Manifest is the manifest the store serves.
func (s *Store) Manifest() *Manifest { return s.manifest }

// DefaultDownloadDir is $K4T_DOWNLOAD_CACHE when set, else
// /var/cache/k4t/downloads when that is writable (or can be created), else
// ~/.k4t/cache.
func DefaultDownloadDir() string {
	if d := os.Getenv("K4T_DOWNLOAD_CACHE"); d != "" {
		return d
	}
	const sys = "/var/cache/k4t/downloads"
	if writable(sys) {
		return sys
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".k4t", "cache")
	}
	return filepath.Join(os.TempDir(), "k4t-cache")
}

func writable(dir string) bool {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// Resolve returns the local file of the named artifact and its sha256,
// after checking the file against the manifest (downloading it first if it
// is a URL artifact not yet in the cache).
func (s *Store) Resolve(ctx context.Context, name string) (localPath, sum string, err error) {
	a, err := s.manifest.Get(name)
	if err != nil {
		return "", "", err
	}
	return s.resolve(ctx, a)
}

// Verify resolves every artifact in the manifest and returns one error per
// artifact that failed (nil when all are fine).
func (s *Store) Verify(ctx context.Context) []error {
	var errs []error
	for i := range s.manifest.Artifacts {
		if _, _, err := s.resolve(ctx, &s.manifest.Artifacts[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Remote says whether any artifact comes from a URL or a registry.
func (s *Store) Remote() bool {
	for _, a := range s.manifest.Artifacts {
		if a.Path == "" {
			return true
		}
	}
	return false
}

// Fetch downloads (or pulls) and verifies every artifact that comes from a
// URL or a registry, a few at a time, and returns one error per artifact
// that failed. What is in the cache already costs a check only.
func (s *Store) Fetch(ctx context.Context) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
	)
	for i := range s.manifest.Artifacts {
		a := &s.manifest.Artifacts[i]
		if a.Path != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			if s.nodePulls && a.Pulled() {
				_, err = s.ImageDigest(ctx, a.Name)
			} else {
				_, _, err = s.resolve(ctx, a)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

func (s *Store) lock(name string) func() {
	s.mu.Lock()
	l, ok := s.locks[name]
	if !ok {
		l = &sync.Mutex{}
		s.locks[name] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func label(a *Artifact) string {
	if a.Version == "" {
		return a.Name
	}
	return a.Name + " " + a.Version
}

func (s *Store) resolve(ctx context.Context, a *Artifact) (string, string, error) {
	defer s.lock(cmp.Or(a.URL, a.Image, a.Name))() // artifacts of one archive share its download
	if a.Path != "" {
		p := s.manifest.LocalPath(a)
		fix := fmt.Sprintf("the file changed since the manifest was written: rebuild it (hack/build-artifacts/build.sh) or correct sha256 in %s", s.manifest.describe())
		if err := s.check(a, p, a.SHA256, fix); err != nil {
			return "", "", err
		}
		return p, a.SHA256, nil
	}
	if a.Pulled() {
		return s.pull(ctx, a)
	}
	want, err := s.sumOf(ctx, a)
	if err != nil {
		return "", "", err
	}
	p := filepath.Join(s.cache(), want, a.FileName())
	if err := s.download(ctx, a, want, p); err != nil {
		return "", "", err
	}
	if a.SHA256 == "" {
		// What the project published, now verified: later runs check against it.
		if err := s.pins.Set(a.URL, want); err != nil {
			return "", "", fmt.Errorf("artifact %s: %w", label(a), err)
		}
	}
	if a.Member != "" {
		return s.member(a, p)
	}
	return p, want, nil
}

// cache is the download dir, chosen at first use.
func (s *Store) cache() string {
	s.cacheOnce.Do(func() {
		if s.cacheDir == "" {
			s.cacheDir = DefaultDownloadDir()
		}
	})
	return s.cacheDir
}

// sumBy names where a URL artifact's sum comes from: the manifest, the
// pins, or its project's checksum file.
func (s *Store) sumBy(a *Artifact) string {
	switch {
	case a.SHA256 != "":
		return "the manifest " + s.manifest.describe()
	case s.pins.Get(a.URL) != "":
		return "the sum pinned for this cluster (artifact-pins.yaml in its state dir: delete its line there to verify it anew)"
	}
	return "its published checksum file " + s.mirrored(a.SumURL)
}

// sumOf is the sha256 a URL artifact's file must have: the manifest's, else
// the pinned one, else the one its project's checksum file gives.
func (s *Store) sumOf(ctx context.Context, a *Artifact) (string, error) {
	if a.SHA256 != "" {
		return a.SHA256, nil
	}
	if p := s.pins.Get(a.URL); p != "" {
		return p, nil
	}
	from := s.mirrored(a.SumURL)
	var b []byte
	err := s.retry(ctx, a, from, func() (err error) {
		b, err = s.get(ctx, a, from)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("artifact %s: fetching its checksum file %s: %w", label(a), from, err)
	}
	sum, err := sumFor(b, a.FileName(), from)
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", label(a), err)
	}
	return sum, nil
}

// get reads a small file (up to 1 MiB) at u, for a.
func (s *Store) get(ctx context.Context, a *Artifact, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, permanentError{err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (check the network, or set spec.artifacts.mirrors)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, s.statusError(a, resp)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// mirrored is u below the mirror of the longest upstream base it starts
// with, or u.
func (s *Store) mirrored(u string) string {
	best := ""
	for from := range s.mirrors {
		base := strings.TrimSuffix(from, "/")
		if (u == base || strings.HasPrefix(u, base+"/")) && len(base) > len(best) {
			best = base
		}
	}
	if best == "" {
		return u
	}
	return strings.TrimSuffix(s.mirrors[best], "/") + strings.TrimPrefix(strings.TrimSuffix(u, "/"), best)
}

// check hashes p (unless this process hashed it already and its size and
// mtime are unchanged) and compares it with want.
func (s *Store) check(a *Artifact, p, want, fix string) error {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("artifact %s: %s does not exist: build it (hack/build-artifacts/build.sh) or fix path in %s", label(a), p, s.manifest.describe())
		}
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	if st.IsDir() {
		return fmt.Errorf("artifact %s: %s is a directory, not a file: fix path in %s", label(a), p, s.manifest.describe())
	}
	s.mu.Lock()
	k, ok := s.verified[p]
	s.mu.Unlock()
	if ok && k.size == st.Size() && k.mtime.Equal(st.ModTime()) && k.sum == want {
		return nil
	}
	start := time.Now()
	sum, err := FileSHA256(p)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	if sum != want {
		return &ChecksumError{Artifact: label(a), File: p, Expected: want, Actual: sum, Fix: fix}
	}
	slog.Debug("artifact verified", "artifact", a.Name, "file", p, "bytes", st.Size(), "took", time.Since(start))
	s.mu.Lock()
	s.verified[p] = fileKey{size: st.Size(), mtime: st.ModTime(), sum: sum}
	s.mu.Unlock()
	return nil
}

// FileSHA256 is the lowercase hex sha256 of the file at p.
func FileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
