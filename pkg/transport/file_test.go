package transport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"k4t.io/k4t/pkg/transport"
	"k4t.io/k4t/pkg/transport/sshtest"
)

var fsErrNotExist = fs.ErrNotExist

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown to root:root)")
	}
}

func ownerOf(t *testing.T, p string) (uint32, uint32) {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid
}

func TestPutSkipAndFix(t *testing.T) {
	requireRoot(t)
	k := newTestKey(t)
	srv, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "a", "b", "c.conf")
	f := transport.File{Path: p, Content: []byte("hello\n"), Mode: 0o640}

	changed, err := h.Put(ctx, f)
	if err != nil || !changed {
		t.Fatalf("first put: %v %v", changed, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hello\n" {
		t.Fatalf("content %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*k4t-tmp*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}

	sent := srv.SFTPBytesIn()
	changed, err = h.Put(ctx, f)
	if err != nil || changed {
		t.Fatalf("second put: changed=%v err=%v", changed, err)
	}
	if d := srv.SFTPBytesIn() - sent; d != 0 {
		t.Fatalf("second put sent %d sftp bytes", d)
	}

	// Only mode and owner differ: fixed without sending the content.
	os.Chmod(p, 0o666)
	os.Chown(p, 1, 1)
	changed, err = h.Put(ctx, f)
	if err != nil || !changed {
		t.Fatalf("fix put: %v %v", changed, err)
	}
	if d := srv.SFTPBytesIn() - sent; d != 0 {
		t.Fatalf("mode/owner fix sent %d sftp bytes", d)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	if u, g := ownerOf(t, p); u != 0 || g != 0 {
		t.Fatalf("owner %d:%d", u, g)
	}

	// Another owner and special bits.
	f2 := transport.File{Path: p, Content: []byte("v2\n"), Mode: 0o750 | fs.ModeSetgid, Owner: "daemon:daemon"}
	if changed, err := h.Put(ctx, f2); err != nil || !changed {
		t.Fatalf("put v2: %v %v", changed, err)
	}
	fi, err := h.Stat(ctx, p)
	if err != nil || fi.Mode != 0o750|fs.ModeSetgid || fi.Owner != "daemon:daemon" || fi.SHA256 != sha("v2\n") {
		t.Fatalf("stat %+v %v", fi, err)
	}
	if changed, err := h.Put(ctx, f2); err != nil || changed {
		t.Fatalf("put v2 again: %v %v", changed, err)
	}
}

func sha(s string) string {
	x := sha256.Sum256([]byte(s))
	return hex.EncodeToString(x[:])
}

func TestPutSourceAtomic(t *testing.T) {
	requireRoot(t)
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	ctx := context.Background()

	dir := t.TempDir()
	target := filepath.Join(dir, "big.bin")
	old := bytes.Repeat([]byte("o"), 3<<20)
	if err := os.WriteFile(target, old, 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src.bin")
	neu := bytes.Repeat([]byte("n"), 3<<20)
	if err := os.WriteFile(src, neu, 0o600); err != nil {
		t.Fatal(err)
	}

	// While the upload runs, every read of the target sees the old or the
	// new file, whole.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, bad atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			b, err := os.ReadFile(target)
			if err != nil {
				bad.Add(1)
				continue
			}
			reads.Add(1)
			if !bytes.Equal(b, old) && !bytes.Equal(b, neu) {
				bad.Add(1)
			}
		}
	}()
	changed, err := h.Put(ctx, transport.File{Path: target, Source: src, Mode: 0o755})
	stop.Store(true)
	wg.Wait()
	if err != nil || !changed {
		t.Fatalf("put: %v %v", changed, err)
	}
	if bad.Load() != 0 {
		t.Fatalf("%d of %d reads saw a partial or missing file", bad.Load(), reads.Load())
	}
	if b, _ := os.ReadFile(target); !bytes.Equal(b, neu) {
		t.Fatal("content differs")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries (temp file left?)", len(entries))
	}
	// With the checksum given, the source is not read again.
	if changed, err := h.Put(ctx, transport.File{Path: target, Source: src, Mode: 0o755, SHA256: sha(string(neu))}); err != nil || changed {
		t.Fatalf("second put: %v %v", changed, err)
	}
}

func TestGetStat(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	ctx := context.Background()
	dir := t.TempDir()

	_, err := h.Get(ctx, filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), cfg.Name) {
		t.Fatalf("get missing: %v", err)
	}
	fi, err := h.Stat(ctx, filepath.Join(dir, "missing"))
	if err != nil || fi.Exists {
		t.Fatalf("stat missing: %+v %v", fi, err)
	}

	p := filepath.Join(dir, "with space's")
	os.WriteFile(p, []byte("data"), 0o600)
	b, err := h.Get(ctx, p)
	if err != nil || string(b) != "data" {
		t.Fatalf("get: %q %v", b, err)
	}
	fi, err = h.Stat(ctx, p)
	if err != nil || !fi.Exists || fi.Mode != 0o600 || fi.SHA256 != sha("data") || !strings.Contains(fi.Owner, ":") {
		t.Fatalf("stat: %+v %v", fi, err)
	}
}

func TestOneConnectionPerHost(t *testing.T) {
	requireRoot(t)
	k := newTestKey(t)
	srv, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	ctx := context.Background()
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(dir, "f", string(rune('a'+i)))
			if _, err := h.Run(ctx, transport.Cmd{Command: "true"}); err != nil {
				t.Error(err)
			}
			if _, err := h.Put(ctx, transport.File{Path: p, Content: []byte{byte(i)}, Mode: 0o600}); err != nil {
				t.Error(err)
			}
			if _, err := h.Get(ctx, p); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if srv.Conns() != 1 {
		t.Fatalf("%d connections for one host", srv.Conns())
	}
}

// The Dialer counts the bytes its hosts' Put sent: the file once, then 0.
func TestDialerCountsUploadedBytes(t *testing.T) {
	requireRoot(t)
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	d := transport.NewDialer()
	defer d.Close()
	h, err := d.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	f := transport.File{Path: filepath.Join(t.TempDir(), "x"), Content: bytes.Repeat([]byte("k4t\n"), 1000)}
	for i, want := range []int64{4000, 4000} {
		if _, err := h.Put(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		if got := d.Uploaded(); len(got) != 1 || got[cfg.Name] != want {
			t.Fatalf("put %d: %v bytes counted, want %s: %d", i+1, got, cfg.Name, want)
		}
	}
}
