package artifacts

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Progress is where a download or an image pull stands.
type Progress struct {
	Artifact string // name and version
	From     string // the URL (after mirrors) or the image reference
	Bytes    int64  // received so far, a resumed part included
	Total    int64  // the whole size, 0 when unknown
	Elapsed  time.Duration
	Resumed  int64 // bytes a resumed download already had
	Done     bool
}

// Rate is the bytes per second received in this process.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Bytes-p.Resumed) / p.Elapsed.Seconds()
}

func (s *Store) report(p Progress) {
	if s.progress != nil {
		s.progress(p)
	}
}

// permanentError is a download failure that trying again cannot mend.
type permanentError struct{ error }

// retry calls f, and again after a failure that trying again may mend
// (waiting s.backoff, then twice as long each time), up to s.retries more
// times.
func (s *Store) retry(ctx context.Context, a *Artifact, from string, f func() error) error {
	wait := s.backoff
	for try := 0; ; try++ {
		err := f()
		var perm permanentError
		if err == nil || errors.As(err, &perm) || ctx.Err() != nil || try >= s.retries {
			return err
		}
		slog.Warn("download interrupted; trying again", "artifact", a.Name, "url", from, "try", try+1, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// statusError is the error for an HTTP answer that is not what was asked:
// a server's failure (5xx, 429) may pass, anything else will not.
func (s *Store) statusError(a *Artifact, resp *http.Response) error {
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	fix := "fix its url in " + s.manifest.describe()
	if a.SHA256 == "" && a.SumURL != "" {
		fix = "is that release published? fix spec.kubernetes.version or spec.etcd.version, or the mirror in spec.artifacts.mirrors"
	}
	return permanentError{fmt.Errorf("HTTP %s: %s", resp.Status, fix)}
}

// download makes dest the file at a.URL (through a mirror) whose sha256 is
// want. A dest already there (in the cache) is checked only; otherwise the
// file goes into a partial file first, resumed from where an earlier try
// (or an earlier, killed run) left it, tried again after a network error,
// and is renamed into place only with the right sum. A wrong sum discards
// it.
func (s *Store) download(ctx context.Context, a *Artifact, want, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("artifact %s: download cache: %w (set K4T_DOWNLOAD_CACHE to another dir, or make it writable)", label(a), err)
	}
	from := s.mirrored(a.URL)
	partial := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".partial")
	// Another k4t (another cluster's run) may fetch the same file into the
	// shared cache: one at a time, and the file may be there once we hold
	// the lock.
	locks := filepath.Join(filepath.Dir(filepath.Dir(dest)), ".locks")
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return fmt.Errorf("artifact %s: download cache: %w", label(a), err)
	}
	unlock, err := flock(filepath.Join(locks, filepath.Base(filepath.Dir(dest))+"-"+filepath.Base(dest)+".lock"))
	if err != nil {
		return fmt.Errorf("artifact %s: download cache: %w", label(a), err)
	}
	defer unlock()
	if _, err := os.Stat(dest); err == nil {
		return s.check(a, dest, want, fmt.Sprintf("the cached download is corrupt: delete %s and run again to download it anew", dest))
	}
	start := time.Now()
	var sum string
	for fresh := false; ; fresh = true {
		resumed, err := s.fetchRetried(ctx, a, from, partial, start)
		if err != nil {
			return fmt.Errorf("artifact %s: downloading %s: %w", label(a), from, err)
		}
		if sum, err = FileSHA256(partial); err != nil {
			return fmt.Errorf("artifact %s: %w", label(a), err)
		}
		if sum == want || resumed == 0 || fresh {
			break
		}
		// The part kept from an earlier try may be of another file (one
		// republished, or a mirror mended since): once more from byte 0.
		slog.Warn("a resumed download does not match its sum; downloading it whole", "artifact", a.Name, "url", from)
		os.Remove(partial)
	}
	if sum != want {
		os.Remove(partial)
		fix := fmt.Sprintf("the download was discarded and nothing reached a host: check that %s serves the release its project published", from)
		if a.SHA256 != "" {
			fix = fmt.Sprintf("the download was discarded and nothing reached a host: check that the url serves the intended release and that sha256 in %s is the published one", s.manifest.describe())
		}
		return &ChecksumError{Artifact: label(a), File: from, Expected: want, Actual: sum, Fix: fix, By: s.sumBy(a)}
	}
	if err := os.Chmod(partial, 0o644); err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	if err := os.Rename(partial, dest); err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	st, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", label(a), err)
	}
	s.mu.Lock()
	s.verified[dest] = fileKey{size: st.Size(), mtime: st.ModTime(), sum: sum}
	s.mu.Unlock()
	slog.Info("artifact downloaded", "artifact", a.Name, "url", from, "bytes", st.Size(), "took", time.Since(start))
	return nil
}

// fetchRetried is fetchOnce, tried again after a network error (resuming)
// up to s.retries times; it returns how many bytes the partial file had
// before this call.
func (s *Store) fetchRetried(ctx context.Context, a *Artifact, from, partial string, start time.Time) (int64, error) {
	var had int64
	if st, err := os.Stat(partial); err == nil {
		had = st.Size()
	}
	return had, s.retry(ctx, a, from, func() error { return s.fetchOnce(ctx, a, from, partial, start) })
}

// stallTimeout ends a download that received nothing for that long; it is
// then resumed like one whose connection dropped.
const stallTimeout = time.Minute

// fetchOnce appends to partial what from serves past partial's size (a
// Range request; a server that ignores it sends the whole file, which
// replaces the partial one).
func (s *Store) fetchOnce(ctx context.Context, a *Artifact, from, partial string, start time.Time) error {
	have := int64(0)
	if st, err := os.Stat(partial); err == nil {
		have = st.Size()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := time.AfterFunc(stallTimeout, func() { cancel(fmt.Errorf("nothing received for %s", stallTimeout)) })
	defer stalled.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, from, nil)
	if err != nil {
		return permanentError{err}
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return fmt.Errorf("%w (check the network, or set spec.artifacts.mirrors)", err)
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	total := resp.ContentLength
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0 && strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)):
		flags |= os.O_APPEND
		if total >= 0 {
			total += have
		}
	case resp.StatusCode == http.StatusPartialContent:
		os.Remove(partial) // not the part asked for: start again
		return fmt.Errorf("HTTP %s with Content-Range %q for a download resumed at byte %d; starting again", resp.Status, resp.Header.Get("Content-Range"), have)
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC
		have = 0
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		os.Remove(partial) // longer than the file: start again
		return fmt.Errorf("HTTP %s for a resumed download; starting again", resp.Status)
	default:
		return s.statusError(a, resp)
	}
	f, err := os.OpenFile(partial, flags, 0o600)
	if err != nil {
		return permanentError{fmt.Errorf("download cache: %w", err)}
	}
	p := Progress{Artifact: label(a), From: from, Bytes: have, Total: max(total, 0), Resumed: have}
	w := &progressWriter{w: f, p: &p, start: start, report: s.report, got: func() { stalled.Reset(stallTimeout) }}
	_, err = io.Copy(w, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if err != nil {
		return err
	}
	p.Done, p.Elapsed = true, time.Since(start)
	s.report(p)
	return nil
}

// progressWriter counts what passes and reports every couple of seconds.
type progressWriter struct {
	w      io.Writer
	p      *Progress
	start  time.Time
	last   time.Time
	report func(Progress)
	got    func() // called at each write: bytes came
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	pw.got()
	n, err := pw.w.Write(b)
	pw.p.Bytes += int64(n)
	if now := time.Now(); now.Sub(pw.last) >= 2*time.Second {
		pw.last = now
		pw.p.Elapsed = now.Sub(pw.start)
		pw.report(*pw.p)
	}
	return n, err
}

// member takes a.Member out of the verified archive at archive, once, into
// a file beside it, and returns that file and its sha256 (kept in a .sha256
// file beside it, and checked on each later use).
func (s *Store) member(a *Artifact, archive string) (string, string, error) {
	dest := filepath.Join(filepath.Dir(archive), "members", filepath.FromSlash(path.Clean(a.Member)))
	sumFile := dest + ".sha256"
	if b, err := os.ReadFile(sumFile); err == nil {
		want := strings.TrimSpace(string(b))
		fix := fmt.Sprintf("the file taken out of %s changed: delete %s and run again", archive, filepath.Dir(dest))
		if err := s.check(a, dest, want, fix); err == nil {
			return dest, want, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", "", fmt.Errorf("artifact %s: %w", label(a), err)
	}
	f, err := os.Open(archive)
	if err != nil {
		return "", "", fmt.Errorf("artifact %s: %w", label(a), err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", "", fmt.Errorf("artifact %s: %s is not a .tar.gz: %w", label(a), archive, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", "", fmt.Errorf("artifact %s: %s has no %s (the project's archive layout changed? set the artifact in a manifest instead)", label(a), a.URL, a.Member)
		}
		if err != nil {
			return "", "", fmt.Errorf("artifact %s: reading %s: %w", label(a), archive, err)
		}
		if h.Typeflag != tar.TypeReg || path.Clean(strings.TrimPrefix(h.Name, "./")) != path.Clean(a.Member) {
			continue
		}
		tmp, err := os.CreateTemp(filepath.Dir(dest), ".member-*")
		if err != nil {
			return "", "", fmt.Errorf("artifact %s: %w", label(a), err)
		}
		defer os.Remove(tmp.Name())
		hs := sha256.New()
		_, err = io.Copy(io.MultiWriter(tmp, hs), tr)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", "", fmt.Errorf("artifact %s: taking %s out of %s: %w", label(a), a.Member, archive, err)
		}
		sum := hex.EncodeToString(hs.Sum(nil))
		if err := os.Chmod(tmp.Name(), 0o755); err != nil {
			return "", "", err
		}
		if err := os.Rename(tmp.Name(), dest); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(sumFile, []byte(sum+"\n"), 0o644); err != nil {
			return "", "", err
		}
		return dest, sum, nil
	}
}

// flock takes an exclusive lock on the file p (made if missing) until the
// returned func is called; another process waits for it.
func flock(p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
