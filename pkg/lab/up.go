package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AptInstall is the line that installs what the lab needs on Debian/Ubuntu.
const AptInstall = "apt-get install -y debootstrap systemd-container zstd sshpass"

// toolPackages names the package that brings each tool the lab runs.
var toolPackages = map[string]string{
	"systemd-nspawn": "systemd-container",
	"debootstrap":    "debootstrap",
	"zstd":           "zstd",
	"ssh-keygen":     "openssh-client",
	"ip":             "iproute2",
	"tar":            "tar",
	"systemctl":      "systemd",
}

func checkRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("lab: must run as root (it mounts overlays, creates a bridge and cgroups); run it with sudo")
	}
	return nil
}

// checkTools reports every missing tool at once, with the install line.
func checkTools(tools ...string) error {
	var missing []string
	line := AptInstall
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			pkg := toolPackages[t]
			missing = append(missing, fmt.Sprintf("%s (package %s)", t, pkg))
			if !strings.Contains(line+" ", " "+pkg+" ") {
				line += " " + pkg
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("lab: missing %s; install with: %s", strings.Join(missing, ", "), line)
}

func (l *Lab) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return lockFile(ctx, filepath.Join(l.Dir, ".lock"))
}

// locked runs f as root holding the work dir's lock (other k4t lab commands
// wait); a non-empty host must be one of the lab's.
func (l *Lab) locked(ctx context.Context, host string, f func() error) error {
	if err := checkRoot(); err != nil {
		return err
	}
	if host != "" {
		if _, err := l.host(host); err != nil {
			return err
		}
	}
	unlock, err := l.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

// Up takes down whatever an earlier lab left (as Down does), then brings up one host per name
// (addresses in order from .11), and returns when sshd answers on all.
func (l *Lab) Up(ctx context.Context, names []string) error {
	hosts, err := AllocateHosts(l.Subnet, names)
	if err != nil {
		return err
	}
	if err := checkRoot(); err != nil {
		return err
	}
	if err := checkTools("systemd-nspawn", "zstd", "tar", "ssh-keygen", "ip"); err != nil {
		return err
	}
	start := time.Now()
	unlock, err := l.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := l.checkNetwork(); err != nil { // before cleaning: never touch another lab
		return err
	}
	if err := l.down(ctx); err != nil { // stops an earlier lab cleanly, then Cleanup
		return err
	}
	l.log().Debug("lab up: cleaned", "took", time.Since(start).Round(10*time.Millisecond))
	tarball, err := l.EnsureBase(ctx)
	if err != nil {
		return err
	}
	if err := l.saveState(&state{Bridge: l.Bridge, Hosts: hosts}); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := l.setSysctls(); err != nil {
		return err
	}
	if err := l.createBridge(ctx); err != nil {
		return err
	}
	if err := l.prepareLab(ctx, tarball); err != nil {
		return err
	}
	if err := l.startAll(ctx, hosts); err != nil {
		return err
	}
	l.log().Info("lab up", "hosts", len(hosts), "took", time.Since(start).Round(10*time.Millisecond), "dir", l.Dir)
	return nil
}

// prepareLab makes the lab's key pair, root password and spawn script, and
// unpacks the base if needed.
func (l *Lab) prepareLab(ctx context.Context, tarball string) error {
	if err := run(ctx, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "k4t-lab", "-f", l.KeyFile()); err != nil {
		return fmt.Errorf("lab: making the lab key: %w", err)
	}
	pw, err := randomPassword(20)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.passwordPath(), []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("lab: saving root password: %w", err)
	}
	if _, err := l.unpackBase(ctx, tarball); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(l.Dir, "hosts"), 0o755); err != nil {
		return err
	}
	spawn, _ := files.ReadFile("files/spawn.sh")
	return os.WriteFile(l.spawnScript(), spawn, 0o755)
}

// startAll starts hosts in parallel and waits for their sshd.
func (l *Lab) startAll(ctx context.Context, hosts []Host) error {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.startHost(ctx, h)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w\n(the lab is partly up: `k4t lab status` shows it, `k4t lab down` removes it)", err)
	}
	kh, err := l.KnownHosts()
	if err != nil {
		return err
	}
	return writeFileAtomic(l.KnownHostsFile(), []byte(kh), 0o644)
}

func (l *Lab) startHost(ctx context.Context, h Host) error {
	t := time.Now()
	if err := l.prepareHost(ctx, h); err != nil {
		return fmt.Errorf("lab %s: %w", h.Name, err)
	}
	l.log().Debug("lab host prepared", "host", h.Name, "took", time.Since(t).Round(10*time.Millisecond))
	if err := l.spawn(ctx, h); err != nil {
		return fmt.Errorf("lab %s: %w", h.Name, err)
	}
	if err := l.waitSSH(ctx, h, 90*time.Second); err != nil {
		return err
	}
	l.log().Info("lab host up", "host", h.Name, "address", h.Address, "took", time.Since(t).Round(10*time.Millisecond))
	return nil
}

// Down stops every host cleanly (in parallel; killed after a timeout), then
// runs Cleanup: mounts, cgroups, links, bridge, sysctls, work dir contents.
func (l *Lab) Down(ctx context.Context) error {
	return l.locked(ctx, "", func() error { return l.down(ctx) })
}

func (l *Lab) down(ctx context.Context) error {
	t := time.Now()
	hostDirs, _ := filepath.Glob(filepath.Join(l.Dir, "hosts", "*"))
	var wg sync.WaitGroup
	for _, hd := range hostDirs {
		name := filepath.Base(hd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.stopHost(ctx, name, 10*time.Second); err != nil {
				l.log().Warn("lab down: stopping host", "host", name, "err", err)
			}
		}()
	}
	wg.Wait()
	l.log().Debug("lab down: hosts stopped", "took", time.Since(t).Round(10*time.Millisecond))
	return l.cleanup(ctx)
}

// Start starts a stopped (or crashed) host again; its upper layer, address
// and host keys are kept. It returns when sshd answers.
func (l *Lab) Start(ctx context.Context, name string) error {
	return l.locked(ctx, name, func() error {
		if l.nspawnPid(name) != 0 {
			return fmt.Errorf("lab %s: already running", name)
		}
		if exists, _ := link(l.Bridge); !exists {
			return fmt.Errorf("lab %s: bridge %s is gone; bring the lab up again with `k4t lab up`", name, l.Bridge)
		}
		h, err := l.host(name)
		if err != nil {
			return err
		}
		return l.startHost(ctx, h)
	})
}

// Stop powers a host off cleanly (SIGRTMIN+4 to its init; killed after 15 s).
func (l *Lab) Stop(ctx context.Context, name string) error {
	return l.locked(ctx, name, func() error { return l.stopHost(ctx, name, 15*time.Second) })
}

// Kill crashes a host: SIGKILL to its container init. Start brings it back.
func (l *Lab) Kill(ctx context.Context, name string) error {
	return l.locked(ctx, name, func() error { return l.killHost(ctx, name) })
}

// HostStatus is one host as Status sees it.
type HostStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Running   bool   `json:"running"`
	NspawnPID int    `json:"nspawnPID,omitempty"`
	InitPID   int    `json:"initPID,omitempty"`
	// MemoryBytes is the host's memory cgroup usage (RSS + page cache);
	// RSSBytes only the anonymous memory (memory.stat total_rss).
	MemoryBytes uint64 `json:"memoryBytes,omitempty"`
	RSSBytes    uint64 `json:"rssBytes,omitempty"`
}

// Status reports each host of the lab.
func (l *Lab) Status() ([]HostStatus, error) {
	hs, err := l.Hosts()
	if err != nil {
		return nil, err
	}
	out := make([]HostStatus, 0, len(hs))
	for _, h := range hs {
		s := HostStatus{Name: h.Name, Address: h.Address}
		if np := l.nspawnPid(h.Name); np != 0 {
			s.Running, s.NspawnPID, s.InitPID = true, np, initPid(np)
			for _, d := range l.recordedCgroups(h.Name) {
				if strings.HasPrefix(d, "/sys/fs/cgroup/memory/") {
					s.MemoryBytes = readUint(filepath.Join(d, "memory.usage_in_bytes"))
					s.RSSBytes = statField(filepath.Join(d, "memory.stat"), "total_rss")
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func readUint(p string) uint64 {
	b, _ := os.ReadFile(p)
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func statField(p, key string) uint64 {
	b, _ := os.ReadFile(p)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
