package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sigRTMin4 is SIGRTMIN+4 as userspace numbers it (glibc's SIGRTMIN is 34):
// systemd powers off cleanly on it.
const sigRTMin4 = syscall.Signal(38)

func (l *Lab) pidPath(name string) string     { return filepath.Join(l.hostDir(name), "nspawn.pid") }
func (l *Lab) cgroupsPath(name string) string { return filepath.Join(l.hostDir(name), "cgroups") }
func (l *Lab) logPath(name string) string     { return filepath.Join(l.hostDir(name), "nspawn.log") }

// nspawnArgs is the systemd-nspawn command line for one host (lab.md, step 4).
func (l *Lab) nspawnArgs(h Host) []string {
	return []string{
		"systemd-nspawn",
		"-D", l.rootDir(h.Name),
		"--boot",
		"--machine=" + h.Name, "--hostname=" + h.Name,
		"--register=no", "--keep-unit", // no systemd/machined on the machine
		"--network-bridge=" + l.Bridge,
		"--console=read-only",
		"--capability=all",
		"--system-call-filter=@keyring", // runc joins session keyrings
		"--bind=" + filepath.Join(l.hostDir(h.Name), "containerd") + ":/var/lib/containerd", // overlay snapshots need ext4
		"--bind=/dev/kmsg", // kubelet opens it
		"--resolv-conf=off", "--timezone=off", "--link-journal=no",
	}
}

// mounted returns the mount points in /proc/self/mountinfo.
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out
}

func isMounted(p string) bool {
	for _, m := range mountPoints() {
		if m == p {
			return true
		}
	}
	return false
}

// prepareHost mounts the host's overlay root and, the first time, writes its
// identity into the upper layer: hostname, hosts, machine-id, address, resolv.conf
// and fresh ssh host keys. Later starts keep all of it.
func (l *Lab) prepareHost(ctx context.Context, h Host) error {
	hd := l.hostDir(h.Name)
	for _, d := range []string{"upper", "work", "root", "containerd"} {
		if err := os.MkdirAll(filepath.Join(hd, d), 0o755); err != nil {
			return err
		}
	}
	root := l.rootDir(h.Name)
	if !isMounted(root) {
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", l.baseRoot(), filepath.Join(hd, "upper"), filepath.Join(hd, "work"))
		if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
			return fmt.Errorf("mounting overlay root %s: %w", root, err)
		}
	}
	marker := filepath.Join(hd, "identity")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	mid, err := randomHex(16)
	if err != nil {
		return err
	}
	gw := GatewayAddr(l.Subnet)
	wr := map[string]string{
		"etc/hostname":   h.Name + "\n",
		"etc/hosts":      fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", h.Address, h.Name),
		"etc/machine-id": mid + "\n",
		// not 127.0.0.1: CoreDNS would loop. Nothing answers DNS on the bridge; that is fine.
		"etc/resolv.conf": fmt.Sprintf("nameserver %s\n", gw),
		"etc/systemd/network/10-host0.network": fmt.Sprintf("[Match]\nName=host0\n\n[Network]\nAddress=%s/%d\nGateway=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
			h.Address, l.Subnet.Bits(), gw),
	}
	for p, c := range wr {
		full := filepath.Join(root, p)
		_ = os.Remove(full) // a symlink in the base must not be followed
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", full, err)
		}
	}
	if err := run(ctx, "", "ssh-keygen", "-A", "-f", root); err != nil {
		return fmt.Errorf("generating ssh host keys: %w", err)
	}
	pub, err := os.ReadFile(l.KeyFile() + ".pub")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "root", ".ssh", "authorized_keys"), pub, 0o600); err != nil {
		return err
	}
	pw, err := l.Password()
	if err != nil {
		return err
	}
	// chpasswd runs inside the host's root so that its PAM and login.defs
	// apply; the new /etc/shadow lands in the upper layer.
	if err := run(ctx, "root:"+pw+"\n", "chroot", root, "chpasswd"); err != nil {
		return fmt.Errorf("setting root password: %w", err)
	}
	return os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// spawn places a wrapper shell in the host's own cgroup in every hierarchy
// and has it exec systemd-nspawn, in a new session, logging to the host dir.
func (l *Lab) spawn(ctx context.Context, h Host) error {
	hs, err := hierarchies()
	if err != nil {
		return fmt.Errorf("reading cgroups: %w", err)
	}
	// Stale subgroups from a crash of this host are removed first.
	for _, d := range l.recordedCgroups(h.Name) {
		if err := removeCgroupTree(d); err != nil {
			return err
		}
	}
	dirs, err := hostCgroups(hs, l.CgroupName, h.Name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.cgroupsPath(h.Name), []byte(strings.Join(dirs, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(l.logPath(h.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== k4t lab: starting %s at %s\n", h.Name, time.Now().UTC().Format(time.RFC3339))
	args := append([]string{l.spawnScript()}, dirs...)
	args = append(args, "--")
	args = append(args, l.nspawnArgs(h)...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = nspawnEnv(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it if this process lives on (tests)
	return os.WriteFile(l.pidPath(h.Name), []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// nspawnEnv drops SYSTEMD_NSPAWN_* settings: API_VFS_WRITABLE in particular
// makes networkd wait for udev forever, and host0 never gets its address.
func nspawnEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "SYSTEMD_NSPAWN_") {
			out = append(out, e)
		}
	}
	return out
}

func (l *Lab) recordedCgroups(name string) []string {
	b, err := os.ReadFile(l.cgroupsPath(name))
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range strings.Fields(string(b)) {
		if strings.HasSuffix(s, "/"+l.CgroupName+"/"+name) { // never anything else
			out = append(out, s)
		}
	}
	return out
}

// procAlive reports whether pid runs (a zombie does not).
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

// nspawnPid returns the host's systemd-nspawn pid if it runs, checking that
// the pid is really our nspawn for this root (pids get reused).
func (l *Lab) nspawnPid(name string) int {
	b, err := os.ReadFile(l.pidPath(name))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !procAlive(pid) {
		return 0
	}
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	args := strings.Split(string(cl), "\x00")
	isNspawn, rootOK := false, false
	for i, a := range args {
		if i == 0 && filepath.Base(a) == "systemd-nspawn" {
			isNspawn = true
		}
		if a == "-D" && i+1 < len(args) && args[i+1] == l.rootDir(name) {
			rootOK = true
		}
	}
	if !isNspawn || !rootOK {
		return 0
	}
	return pid
}

// initPid returns the container's init (PID 1 inside) for an nspawn pid.
func initPid(nspawn int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		ppid, nsInit := 0, false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				fs := strings.Fields(v)
				nsInit = len(fs) >= 2 && fs[len(fs)-1] == "1"
			}
		}
		f.Close()
		if ppid == nspawn && nsInit && procAlive(pid) {
			return pid
		}
	}
	return 0
}

func waitGone(ctx context.Context, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for procAlive(pid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// stopHost powers the host off (SIGRTMIN+4 to its init), waits up to
// timeout, then kills what is left and clears its cgroups.
func (l *Lab) stopHost(ctx context.Context, name string, timeout time.Duration) error {
	if np := l.nspawnPid(name); np != 0 {
		if ip := initPid(np); ip != 0 {
			_ = syscall.Kill(ip, sigRTMin4)
		} else {
			_ = syscall.Kill(np, syscall.SIGTERM)
		}
		if !waitGone(ctx, np, timeout) {
			l.log().Warn("lab: host did not power off in time; killing it", "host", name, "timeout", timeout)
			if ip := initPid(np); ip != 0 {
				_ = syscall.Kill(ip, syscall.SIGKILL)
			}
			if !waitGone(ctx, np, 5*time.Second) {
				_ = syscall.Kill(np, syscall.SIGKILL)
				waitGone(ctx, np, 5*time.Second)
			}
		}
	}
	for _, d := range l.recordedCgroups(name) {
		if err := removeCgroupTree(d); err != nil {
			return fmt.Errorf("lab %s: %w", name, err)
		}
	}
	return nil
}

// killHost is a crash: SIGKILL to the container's init.
func (l *Lab) killHost(ctx context.Context, name string) error {
	np := l.nspawnPid(name)
	if np == 0 {
		return fmt.Errorf("lab %s: not running (start it with `k4t lab start %s`)", name, name)
	}
	ip := initPid(np)
	if ip == 0 {
		_ = syscall.Kill(np, syscall.SIGKILL)
	} else {
		_ = syscall.Kill(ip, syscall.SIGKILL)
	}
	if !waitGone(ctx, np, 10*time.Second) {
		_ = syscall.Kill(np, syscall.SIGKILL)
		waitGone(ctx, np, 5*time.Second)
	}
	return nil
}

// hostKeys returns the public host keys from the host's upper layer.
func (l *Lab) hostKeys(name string) ([]string, error) {
	var out []string
	for _, t := range []string{"ed25519", "ecdsa", "rsa"} {
		p := filepath.Join(l.hostDir(name), "upper", "etc", "ssh", "ssh_host_"+t+"_key.pub")
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			out = append(out, f[0]+" "+f[1])
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lab %s: no ssh host keys in its upper layer", name)
	}
	return out, nil
}

// logTail returns the last lines of the host's nspawn log, for errors.
func (l *Lab) logTail(name string, n int) string {
	b, _ := os.ReadFile(l.logPath(name))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
