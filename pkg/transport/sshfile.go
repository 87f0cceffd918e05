package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
)

//go:embed scripts/stat.sh
var statScript string

// noKeepKey marks a context whose stats must not write the host's
// checksum cache.
type noKeepKey struct{}

// WithoutKeptSums returns a context under which Stat and StatMany read
// the sums a host has kept but keep none: for plan, which leaves no trace on
// a host (not even in /run).
func WithoutKeptSums(ctx context.Context) context.Context {
	return context.WithValue(ctx, noKeepKey{}, true)
}

func keepSums(ctx context.Context) bool { return ctx.Value(noKeepKey{}) == nil }

// Stat is StatMany of one path.
func (h *sshHost) Stat(ctx context.Context, p string) (FileInfo, error) {
	fis, err := h.StatMany(ctx, []string{p})
	if err != nil {
		return FileInfo{}, err
	}
	return fis[0], nil
}

// StatMany runs one command (scripts/stat.sh) for every path: one round trip,
// and no sha256 computed again for a file unchanged since its last stat.
func (h *sshHost) StatMany(ctx context.Context, paths []string) ([]FileInfo, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	var q []string
	if !keepSums(ctx) {
		q = append(q, "--no-keep")
	}
	for _, p := range paths {
		q = append(q, ShellQuote(p))
	}
	res, err := h.Run(ctx, Cmd{
		Command:  "sh -s -- " + strings.Join(q, " "),
		Stdin:    []byte(statScript),
		Timeout:  5 * time.Minute,
		ReadOnly: true,
	})
	what := paths[0]
	if len(paths) > 1 {
		what = fmt.Sprintf("%s and %d more", paths[0], len(paths)-1)
	}
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", what, err)
	}
	fis, err := parseStats(res.Stdout, len(paths))
	if err != nil {
		return nil, fmt.Errorf("%s: stat %s: %w", h.Name(), what, err)
	}
	return fis, nil
}

// parseStats reads n lines of scripts/stat.sh.
func parseStats(out []byte, n int) ([]FileInfo, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != n {
		return nil, fmt.Errorf("%d line(s) for %d path(s): %q", len(lines), n, out)
	}
	fis := make([]FileInfo, n)
	for i, l := range lines {
		fi, err := parseStat([]byte(l))
		if err != nil {
			return nil, err
		}
		fis[i] = fi
	}
	return fis, nil
}

func parseStat(out []byte) (FileInfo, error) {
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 1 && lines[0] == "absent" {
		return FileInfo{}, nil
	}
	// "644 root:root <sha256>"
	if len(lines) != 3 || len(lines[2]) != 64 {
		return FileInfo{}, fmt.Errorf("unexpected output %q", out)
	}
	m, err := strconv.ParseUint(lines[0], 8, 32)
	if err != nil {
		return FileInfo{}, fmt.Errorf("unexpected mode %q", lines[0])
	}
	return FileInfo{Exists: true, Mode: fromUnixMode(uint32(m)), Owner: lines[1], SHA256: lines[2]}, nil
}

// unixMode is the chmod octal of m (permissions and setuid/setgid/sticky).
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

func fromUnixMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// putPlan is a File with its defaults filled in.
type putPlan struct {
	f     File
	mode  uint32 // chmod octal
	owner string // user:group
	sum   string
	size  int64
}

func planPut(f File) (putPlan, error) {
	if f.Path == "" || !path.IsAbs(f.Path) {
		return putPlan{}, fmt.Errorf("put: the path %q must be absolute", f.Path)
	}
	p := putPlan{f: f, mode: unixMode(f.Mode), owner: f.Owner, sum: strings.ToLower(f.SHA256)}
	if f.Mode == 0 {
		p.mode = 0o644
	}
	if p.owner == "" {
		p.owner = "root:root"
	}
	if !strings.Contains(p.owner, ":") {
		return putPlan{}, fmt.Errorf("put %s: owner %q must be user:group", f.Path, f.Owner)
	}
	p.size = int64(len(f.Content))
	if f.Source != "" {
		st, err := os.Stat(f.Source)
		if err != nil {
			return putPlan{}, fmt.Errorf("put %s: %w", f.Path, err)
		}
		p.size = st.Size()
	}
	if p.sum == "" {
		s, err := fileSHA256(f)
		if err != nil {
			return putPlan{}, err
		}
		p.sum = s
	}
	return p, nil
}

// fileSHA256 hashes Content, or streams Source.
func fileSHA256(f File) (string, error) {
	if f.Source == "" {
		s := sha256.Sum256(f.Content)
		return hex.EncodeToString(s[:]), nil
	}
	r, err := os.Open(f.Source)
	if err != nil {
		return "", fmt.Errorf("put %s: %w", f.Path, err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("put %s: reading %s: %w", f.Path, f.Source, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (p putPlan) open() (io.ReadCloser, error) {
	if p.f.Source != "" {
		return os.Open(p.f.Source)
	}
	return io.NopCloser(bytes.NewReader(p.f.Content)), nil
}

// Put uploads f atomically unless the remote file already matches.
func (h *sshHost) Put(ctx context.Context, f File) (bool, error) {
	p, err := planPut(f)
	if err != nil {
		return false, fmt.Errorf("%s: %w", h.Name(), err)
	}
	cur, err := h.Stat(ctx, f.Path)
	if err != nil {
		return false, fmt.Errorf("put: %w", err)
	}
	if cur.Exists && cur.SHA256 == p.sum {
		if unixMode(cur.Mode) == p.mode && cur.Owner == p.owner {
			return false, nil
		}
		q := ShellQuote(f.Path)
		_, err := h.Run(ctx, Cmd{Command: fmt.Sprintf("chown %s %s && chmod %o %s", ShellQuote(p.owner), q, p.mode, q)})
		if err != nil {
			return false, fmt.Errorf("put %s (fixing mode/owner): %w", f.Path, err)
		}
		return true, nil
	}
	start := time.Now()
	if h.cfg.useSudo() {
		err = h.putSudo(ctx, p)
	} else {
		err = h.putDirect(ctx, p)
	}
	if err != nil {
		return false, err
	}
	if h.uploaded != nil {
		h.uploaded.Add(p.size)
	}
	h.cfg.log().Debug("ssh put", "host", h.Name(), "path", f.Path, "sha256", p.sum, "duration", time.Since(start))
	return true, nil
}

// putDirect writes as the (root) login user: temp file beside the target,
// fsync, chown/chmod, rename over the target.
func (h *sshHost) putDirect(ctx context.Context, p putPlan) (err error) {
	c, err := h.sftp()
	if err != nil {
		return err
	}
	dir := path.Dir(p.f.Path)
	tmp := path.Join(dir, "."+path.Base(p.f.Path)+".k4t-tmp-"+randSuffix())
	fail := func(step string, e error) error {
		return fmt.Errorf("%s: put %s: %s: %w", h.Name(), p.f.Path, step, e)
	}
	if err := c.MkdirAll(dir); err != nil {
		return fail("mkdir -p "+dir, err)
	}
	if err := ctx.Err(); err != nil {
		return fail("cancelled", err)
	}
	w, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_TRUNC)
	if err != nil {
		return fail("creating "+tmp, err)
	}
	defer func() {
		if err != nil {
			w.Close()
			c.Remove(tmp)
		}
	}()
	if err := w.Chmod(0o600); err != nil { // private while being written
		return fail("chmod "+tmp, err)
	}
	r, err := p.open()
	if err != nil {
		return fail("reading "+p.f.Source, err)
	}
	defer r.Close()
	if err := upload(ctx, w, r, p.size); err != nil {
		return fail("writing", err)
	}
	synced := false
	if _, ok := c.HasExtension("fsync@openssh.com"); ok {
		if err := w.Sync(); err != nil {
			return fail("fsync", err)
		}
		synced = true
	}
	if err := w.Close(); err != nil {
		return fail("closing "+tmp, err)
	}
	var cmd []string
	if !synced {
		cmd = append(cmd, "sync "+ShellQuote(tmp))
	}
	if p.owner != "root:root" || h.cfg.user() != "root" {
		cmd = append(cmd, "chown "+ShellQuote(p.owner)+" "+ShellQuote(tmp))
	}
	if len(cmd) > 0 {
		if _, err := h.Run(ctx, Cmd{Command: strings.Join(cmd, " && ")}); err != nil {
			return fail("sync/chown", err)
		}
	}
	if err := c.Chmod(tmp, fromUnixMode(p.mode)); err != nil {
		return fail("chmod", err)
	}
	if err := c.PosixRename(tmp, p.f.Path); err != nil {
		return fail("renaming "+tmp, err)
	}
	return nil
}

// putSudo uploads as the login user to /tmp, then a sudo command installs
// it beside the target and renames it over the target.
func (h *sshHost) putSudo(ctx context.Context, p putPlan) (err error) {
	c, err := h.sftp()
	if err != nil {
		return err
	}
	fail := func(step string, e error) error {
		return fmt.Errorf("%s: put %s: %s: %w", h.Name(), p.f.Path, step, e)
	}
	up := "/tmp/.k4t-upload-" + randSuffix()
	w, err := c.OpenFile(up, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_TRUNC)
	if err != nil {
		return fail("creating "+up, err)
	}
	defer c.Remove(up)
	if err := w.Chmod(0o600); err != nil {
		w.Close()
		return fail("chmod "+up, err)
	}
	r, err := p.open()
	if err != nil {
		w.Close()
		return fail("reading "+p.f.Source, err)
	}
	err = upload(ctx, w, r, p.size)
	r.Close()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("writing "+up, err)
	}
	user, group, _ := strings.Cut(p.owner, ":")
	dir := path.Dir(p.f.Path)
	tmp := path.Join(dir, "."+path.Base(p.f.Path)+".k4t-tmp-"+randSuffix())
	qt, qp := ShellQuote(tmp), ShellQuote(p.f.Path)
	cmd := fmt.Sprintf("mkdir -p %s && install -m %o -o %s -g %s %s %s && sync %s && mv -f %s %s; r=$?; rm -f %s %s; exit $r",
		ShellQuote(dir), p.mode, ShellQuote(user), ShellQuote(group), ShellQuote(up), qt, qt, qt, qp, ShellQuote(up), qt)
	if _, err := h.Run(ctx, Cmd{Command: cmd}); err != nil {
		return fail("install", err)
	}
	return nil
}

// Get reads a remote file: over sftp, or with sudo cat when the login user
// is not root.
func (h *sshHost) Get(ctx context.Context, p string) ([]byte, error) {
	if h.cfg.useSudo() {
		q := ShellQuote(p)
		res, err := h.Run(ctx, Cmd{Command: "[ -e " + q + " ] || { echo k4t-absent >&2; exit 1; }; cat " + q, ReadOnly: true})
		var ce *CmdError
		if errors.As(err, &ce) && strings.Contains(ce.Stderr, "k4t-absent") {
			return nil, fmt.Errorf("%s: reading %s: %w", h.Name(), p, fs.ErrNotExist)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		return res.Stdout, nil
	}
	conn := h.conn()
	b, err := h.getSFTP(ctx, p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && h.redial != nil && ctx.Err() == nil && gone(conn) {
		// A read changes nothing: read again on a new connection.
		if rerr := h.reconnect(ctx, conn); rerr != nil {
			return nil, fmt.Errorf("%w (redialling failed too: %v)", err, rerr)
		}
		return h.getSFTP(ctx, p)
	}
	return b, err
}

func (h *sshHost) getSFTP(ctx context.Context, p string) ([]byte, error) {
	c, err := h.sftp()
	if err != nil {
		return nil, err
	}
	r, err := c.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", h.Name(), p, err)
	}
	defer r.Close()
	b, err := io.ReadAll(ctxReader{ctx, r})
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", h.Name(), p, err)
	}
	return b, nil
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func randSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// upload copies the content into w: concurrent writes for large files
// (overlapping round trips), plain ones for small files.
func upload(ctx context.Context, w *sftp.File, r io.Reader, size int64) error {
	var err error
	if size > 256<<10 {
		_, err = w.ReadFromWithConcurrency(ctxReader{ctx, r}, 0)
	} else {
		_, err = w.ReadFrom(ctxReader{ctx, r})
	}
	return err
}
