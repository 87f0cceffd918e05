package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed files
var files embed.FS

// Suite is the Debian release every lab host runs.
const Suite = "bookworm"

// basePackages are debootstrap's --include list (lab.md, "Base rootfs").
var basePackages = []string{
	"openssh-server", "systemd", "systemd-sysv", "dbus", "iproute2", "iptables",
	"ca-certificates", "haproxy", "keepalived", "conntrack", "socat", "kmod", "procps",
	"curl", "python3", "sudo", "ebtables", "ethtool", "libpam-systemd",
}

// DefaultCacheDir holds the base rootfs tarballs, one per recipe.
const DefaultCacheDir = "/var/cache/k4t/lab"

// DefaultMirror is used when the machine's apt sources name none.
const DefaultMirror = "http://deb.debian.org/debian"

// RecipeHash identifies the base recipe: suite, variant, package list and
// every embedded file (the configure script, units, sshd drop-in). A change in
// any of them names a new cache file, so the base is rebuilt.
func RecipeHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\nvariant=minbase\ninclude=%s\n", Suite, strings.Join(basePackages, ","))
	var names []string
	_ = fs.WalkDir(files, "files", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != "files/spawn.sh" { // spawn.sh runs on the machine
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		b, _ := files.ReadFile(n)
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// BaseTarball is the cache file for the current recipe.
func (l *Lab) BaseTarball() string {
	return filepath.Join(l.CacheDir, fmt.Sprintf("base-%s-%s.tar.zst", Suite, RecipeHash()))
}

// EnsureBase builds the base rootfs tarball once per recipe (debootstrap,
// then files/configure-base.sh) and returns its path. Concurrent callers wait
// on a lock; a cached tarball is returned at once.
func (l *Lab) EnsureBase(ctx context.Context) (string, error) {
	tarball := l.BaseTarball()
	if _, err := os.Stat(tarball); err == nil {
		return tarball, nil
	}
	if err := checkRoot(); err != nil {
		return "", err
	}
	if err := checkTools("debootstrap", "zstd", "tar", "systemctl"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(l.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("lab base: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(l.CacheDir, ".lock"))
	if err != nil {
		return "", fmt.Errorf("lab base: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(tarball); err == nil { // built while we waited
		return tarball, nil
	}
	mirror := l.Mirror
	if mirror == "" {
		mirror = MirrorFromEnvOrApt()
	}
	start := time.Now()
	build := filepath.Join(l.CacheDir, fmt.Sprintf(".build-%s", RecipeHash()))
	if err := removeTree(build); err != nil {
		return "", fmt.Errorf("lab base: %w", err)
	}
	defer func() { _ = removeTree(build) }()
	root := filepath.Join(build, "root")
	l.log().Info("lab base: debootstrap (takes 1-2 minutes, once per recipe)", "suite", Suite, "mirror", mirror, "cache", tarball)
	if err := run(ctx, "", "debootstrap", "--variant=minbase", "--include="+strings.Join(basePackages, ","), Suite, root, mirror); err != nil {
		return "", fmt.Errorf("lab base: debootstrap %s from %s failed: %w (set K4T_LAB_MIRROR to another Debian mirror if this one is unreachable)", Suite, mirror, err)
	}
	fdir := filepath.Join(build, "files")
	if err := writeFiles(fdir); err != nil {
		return "", fmt.Errorf("lab base: %w", err)
	}
	if err := run(ctx, "", "sh", filepath.Join(fdir, "configure-base.sh"), root, fdir); err != nil {
		return "", fmt.Errorf("lab base: configuring the rootfs: %w", err)
	}
	tmp := tarball + ".tmp"
	if err := run(ctx, "", "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0", "-C", root, "-cf", tmp, "."); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("lab base: packing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		return "", fmt.Errorf("lab base: %w", err)
	}
	l.log().Info("lab base: built", "file", tarball, "took", time.Since(start).Round(time.Second))
	return tarball, nil
}

// baseRoot is the unpacked base for the current recipe: the read-only lower
// layer of every host of every lab. It is never written to (per-host
// identity, keys and password go to the upper layers), so it is kept in the
// cache and unpacked once per recipe.
func (l *Lab) baseRoot() string {
	return filepath.Join(l.CacheDir, fmt.Sprintf("base-%s-%s", Suite, RecipeHash()))
}

const unpackedStamp = ".k4t-unpacked"

// unpackBase unpacks the base tarball into baseRoot unless that is done.
func (l *Lab) unpackBase(ctx context.Context, tarball string) (string, error) {
	dir := l.baseRoot()
	if _, err := os.Stat(filepath.Join(dir, unpackedStamp)); err == nil {
		return dir, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(l.CacheDir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, unpackedStamp)); err == nil {
		return dir, nil
	}
	start := time.Now()
	tmp := dir + ".unpacking"
	if err := removeTree(tmp); err != nil {
		return "", err
	}
	if err := removeTree(dir); err != nil { // an incomplete earlier unpack
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := run(ctx, "", "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd", "-C", tmp, "-xpf", tarball); err != nil {
		_ = removeTree(tmp)
		return "", fmt.Errorf("unpacking %s: %w (delete it to rebuild)", tarball, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, unpackedStamp), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	l.log().Info("lab base: unpacked", "dir", dir, "took", time.Since(start).Round(10*time.Millisecond))
	return dir, nil
}

// writeFiles copies the embedded files into dir.
func writeFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := files.ReadDir("files")
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := files.ReadFile("files/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// MirrorFromEnvOrApt returns K4T_LAB_MIRROR, else the first Debian archive
// in this machine's apt sources, else DefaultMirror.
func MirrorFromEnvOrApt() string {
	if m := os.Getenv("K4T_LAB_MIRROR"); m != "" {
		return m
	}
	var texts []string
	for _, p := range aptSourceFiles() {
		if b, err := os.ReadFile(p); err == nil {
			texts = append(texts, string(b))
		}
	}
	if m := mirrorFromSources(texts...); m != "" {
		return m
	}
	return DefaultMirror
}

func aptSourceFiles() []string {
	ps := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		ps = append(ps, m...)
	}
	return ps
}

// mirrorFromSources finds the Debian archive URI in one-line (sources.list)
// or deb822 (.sources) texts: a "deb" entry whose suites include Suite and
// whose URI is not a security archive.
func mirrorFromSources(texts ...string) string {
	ok := func(uri string, suites []string) bool {
		if strings.Contains(uri, "security") || !(strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")) {
			return false
		}
		for _, s := range suites {
			if s == Suite {
				return true
			}
		}
		return false
	}
	for _, t := range texts {
		// deb822 stanzas
		for _, stanza := range strings.Split(t, "\n\n") {
			f := map[string]string{}
			sc := bufio.NewScanner(strings.NewReader(stanza))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if strings.HasPrefix(line, "#") {
					continue
				}
				if k, v, found := strings.Cut(line, ":"); found && !strings.Contains(k, " ") {
					f[strings.ToLower(k)] = strings.TrimSpace(v)
				}
			}
			if f["uris"] == "" || !strings.Contains(" "+f["types"]+" ", " deb ") || strings.EqualFold(f["enabled"], "no") {
				continue
			}
			for _, u := range strings.Fields(f["uris"]) {
				if ok(u, strings.Fields(f["suites"])) {
					return strings.TrimSuffix(u, "/")
				}
			}
		}
		// one-line style
		sc := bufio.NewScanner(strings.NewReader(t))
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 3 || fs[0] != "deb" {
				continue
			}
			fs = fs[1:]
			if strings.HasPrefix(fs[0], "[") { // options
				for len(fs) > 0 && !strings.HasSuffix(fs[0], "]") {
					fs = fs[1:]
				}
				if len(fs) > 0 {
					fs = fs[1:]
				}
			}
			if len(fs) >= 2 && ok(fs[0], fs[1:2]) {
				return strings.TrimSuffix(fs[0], "/")
			}
		}
	}
	return ""
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s (another k4t lab command runs): %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// run runs a command on the machine; its output goes to the error when it fails.
func run(ctx context.Context, stdin string, name string, args ...string) error {
	_, err := output(ctx, stdin, name, args...)
	return err
}

func output(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// Its own process group, killed whole on cancel: debootstrap and tar
	// leave children behind otherwise.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.TrimSpace(string(out))
		if len(s) > 2000 {
			s = "..." + s[len(s)-2000:]
		}
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, s)
	}
	return string(out), nil
}

// removeTree removes dir after unmounting whatever is mounted under it (a
// killed debootstrap leaves proc and sysfs mounted in its target); it refuses
// while something stays mounted there.
func removeTree(dir string) error {
	dir = filepath.Clean(dir)
	var under []string
	for _, m := range mountPoints() {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			under = append(under, m)
		}
	}
	sort.Slice(under, func(i, j int) bool { return len(under[i]) > len(under[j]) })
	for _, m := range under {
		if err := unix.Unmount(m, 0); err != nil {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	for _, m := range mountPoints() {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			return fmt.Errorf("not removing %s: %s is still mounted", dir, m)
		}
	}
	return os.RemoveAll(dir)
}
