package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
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
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("artifact %s: sha256 of %s is %s, the manifest expects %s: %s", e.Artifact, e.File, e.Actual, e.Expected, e.Fix)
}

// Store resolves artifacts of one manifest to local files with a verified
// sha256, downloading URL artifacts once into CacheDir. Safe for concurrent use.
type Store struct {
	manifest *Manifest
	client   *http.Client

	cacheOnce sync.Once
	cacheDir  string // empty until first needed: DefaultDownloadDir()

	mu       sync.Mutex
	locks    map[string]*sync.Mutex // per artifact name: one download at a time
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

// NewStore returns a store for m that keeps downloads in cacheDir
// (DefaultDownloadDir(), chosen at the first URL artifact, when empty).
func NewStore(m *Manifest, cacheDir string, opts ...StoreOption) *Store {
	s := &Store{manifest: m, cacheDir: cacheDir, client: http.DefaultClient,
		locks: map[string]*sync.Mutex{}, verified: map[string]fileKey{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Manifest is the manifest the store serves.
func (s *Store) Manifest() *Manifest { return s.manifest }

// DefaultDownloadDir is /var/cache/k4t/downloads when that is writable (or
// can be created), else ~/.k4t/cache.
func DefaultDownloadDir() string {
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
	defer s.lock(a.Name)()
	if a.Path != "" {
		p := s.manifest.LocalPath(a)
		fix := fmt.Sprintf("the file changed since the manifest was written: rebuild it (hack/build-artifacts/build.sh) or correct sha256 in %s", s.manifest.describe())
		if err := s.check(a, p, fix); err != nil {
			return "", "", err
		}
		return p, a.SHA256, nil
	}
	p := s.cachePath(a)
	if _, err := os.Stat(p); err == nil {
		fix := fmt.Sprintf("the cached download is corrupt: delete %s and run again to download it anew", p)
		if err := s.check(a, p, fix); err != nil {
			return "", "", err
		}
		return p, a.SHA256, nil
	}
	if err := s.download(ctx, a, p); err != nil {
		return "", "", err
	}
	return p, a.SHA256, nil
}

// cachePath is where a URL artifact is kept: by sum, then the URL's file name.
func (s *Store) cachePath(a *Artifact) string {
	base := a.Name
	if u, err := url.Parse(a.URL); err == nil && path.Base(u.Path) != "/" && path.Base(u.Path) != "." {
		base = path.Base(u.Path)
	}
	s.cacheOnce.Do(func() {
		if s.cacheDir == "" {
			s.cacheDir = DefaultDownloadDir()
		}
	})
	return filepath.Join(s.cacheDir, a.SHA256, base)
}

// check hashes p (unless this process hashed it already and its size and
// mtime are unchanged) and compares with the manifest.
func (s *Store) check(a *Artifact, p, fix string) error {
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
	if ok && k.size == st.Size() && k.mtime.Equal(st.ModTime()) && k.sum == a.SHA256 {
		return nil
	}
	start := time.Now()
	sum, err := fileSHA256(p)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	if sum != a.SHA256 {
		return &ChecksumError{Artifact: label(a), File: p, Expected: a.SHA256, Actual: sum, Fix: fix}
	}
	slog.Debug("artifact verified", "artifact", a.Name, "file", p, "bytes", st.Size(), "took", time.Since(start))
	s.mu.Lock()
	s.verified[p] = fileKey{size: st.Size(), mtime: st.ModTime(), sum: sum}
	s.mu.Unlock()
	return nil
}

func fileSHA256(p string) (string, error) {
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

// download fetches a.URL into dest through a temp file, hashing on the way;
// only a file with the right sum is renamed into place.
func (s *Store) download(ctx context.Context, a *Artifact, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("artifact %s: download cache: %w (set another cache dir, or make it writable)", label(a), err)
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return fmt.Errorf("artifact %s: url %q: %w", label(a), a.URL, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("artifact %s: downloading %s: %w (check the network, or use a local path in the manifest)", label(a), a.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("artifact %s: downloading %s: HTTP %s: fix url in %s", label(a), a.URL, resp.Status, s.manifest.describe())
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".download-*")
	if err != nil {
		return fmt.Errorf("artifact %s: download cache: %w", label(a), err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("artifact %s: downloading %s: %w", label(a), a.URL, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != a.SHA256 {
		return &ChecksumError{Artifact: label(a), File: a.URL, Expected: a.SHA256, Actual: sum,
			Fix: fmt.Sprintf("the download was discarded: check that the url serves the intended release and that sha256 in %s is the published one", s.manifest.describe())}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	st, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	s.mu.Lock()
	s.verified[dest] = fileKey{size: st.Size(), mtime: st.ModTime(), sum: sum}
	s.mu.Unlock()
	slog.Info("artifact downloaded", "artifact", a.Name, "url", a.URL, "bytes", n, "took", time.Since(start))
	return nil
}
