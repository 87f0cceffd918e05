package transport_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"k4t.io/k4t/pkg/testenv"
	"k4t.io/k4t/pkg/transport"
)

const sshdPath = "/usr/sbin/sshd"

// realSSHD is an OpenSSH sshd started for one test on 127.0.0.1.
type realSSHD struct {
	addr string
	dir  string
}

// startSSHD starts sshd -D with its own host key and authorized_keys file
// (holding pub), and stops it by PID when the test ends.
func startSSHD(t *testing.T, pub ssh.PublicKey) *realSSHD {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "real sshd test needs root (sshd must run as root)")
	}
	if _, err := os.Stat(sshdPath); err != nil {
		testenv.Missing(t, "real sshd test needs %s (apt-get install openssh-server)", sshdPath)
	}
	dir := t.TempDir()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(hostPriv, "k4t test host")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKey := write("host_key", pem.EncodeToMemory(blk))
	authKeys := write("authorized_keys", ssh.MarshalAuthorizedKey(pub))

	// sshd needs its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Skipf("cannot create /run/sshd: %v", err)
		}
	}
	for attempt := 0; ; attempt++ {
		addr, err := tryStartSSHD(t, dir, write, hostKey, authKeys)
		if err == nil {
			return &realSSHD{addr: addr, dir: dir}
		}
		if attempt == 2 || !errors.Is(err, errPortTaken) {
			t.Fatal(err)
		}
	}
}

var errPortTaken = errors.New("port taken")

// tryStartSSHD starts sshd on a free port; errPortTaken if another process
// took the port between our probe and sshd's bind.
func tryStartSSHD(t *testing.T, dir string, write func(string, []byte) string, hostKey, authKeys string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := write("sshd_config", []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
AllowUsers root k4ttest
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, hostKey, filepath.Join(dir, "sshd.pid"), authKeys)))

	var logs bytes.Buffer
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // sshd's own PID; its children end with their connections
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			if strings.Contains(logs.String(), "Address already in use") {
				return "", errPortTaken
			}
			return "", fmt.Errorf("sshd exited:\n%s", logs.String())
		default:
		}
		if i > 100 {
			return "", fmt.Errorf("sshd does not listen on %s:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, nil
}

func TestRealSSHD(t *testing.T) {
	k := newTestKey(t)
	sshd := startSSHD(t, k.signer.PublicKey())
	ctx := context.Background()
	khFile := filepath.Join(t.TempDir(), "known_hosts")
	kh, err := transport.NewKnownHostsFiles(khFile, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.Config{Name: "real", Addr: sshd.addr, User: "root", KeyFile: k.file, HostKeys: kh}
	h := dial(t, cfg)

	t.Run("run", func(t *testing.T) {
		if got := run(t, h, "id -u; echo \"$0\""); got != "0\nsh\n" {
			t.Fatalf("got %q", got)
		}
		_, err := h.Run(ctx, transport.Cmd{Command: "echo bad >&2; exit 5"})
		var ce *transport.CmdError
		if !errors.As(err, &ce) || ce.ExitCode != 5 || ce.Stderr != "bad" {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("files", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "sub", "f.conf")
		f := transport.File{Path: p, Content: bytes.Repeat([]byte("k4t\n"), 50000), Mode: 0o600}
		if changed, err := h.Put(ctx, f); err != nil || !changed {
			t.Fatalf("put: %v %v", changed, err)
		}
		if changed, err := h.Put(ctx, f); err != nil || changed {
			t.Fatalf("second put: %v %v", changed, err)
		}
		entries, _ := os.ReadDir(filepath.Dir(p))
		if len(entries) != 1 {
			t.Fatalf("%d entries (temp file left?)", len(entries))
		}
		b, err := h.Get(ctx, p)
		if err != nil || !bytes.Equal(b, f.Content) {
			t.Fatalf("get: %d bytes, %v", len(b), err)
		}
		fi, err := h.Stat(ctx, p)
		if err != nil || !fi.Exists || fi.Mode != 0o600 || fi.Owner != "root:root" || len(fi.SHA256) != 64 {
			t.Fatalf("stat: %+v %v", fi, err)
		}
		if _, err := h.Get(ctx, p+".nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("get missing: %v", err)
		}
	})

	t.Run("cancel kills the remote process group", func(t *testing.T) {
		marker := fmt.Sprintf("%d.%d", 600+time.Now().Nanosecond()%100, os.Getpid()%1000)
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := h.Run(ctx, transport.Cmd{Command: "true; sleep " + marker})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		err = waitFor(func() bool { return len(pidsRunning("sleep "+marker)) == 0 })
		if pids := pidsRunning("sleep " + marker); err != nil {
			for _, pid := range pids { // our own test's process
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("remote sleep survived the cancel: %v", pids)
		}
	})

	t.Run("strict host key after accept-new", func(t *testing.T) {
		strict, err := transport.NewKnownHostsFiles(khFile, false)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.HostKeys = strict
		dial(t, c)
	})

	t.Run("password and non-root user", func(t *testing.T) {
		pw := throwawayUser(t)
		c := transport.Config{Name: "real-pw", Addr: sshd.addr, User: "k4ttest", Password: pw, HostKeys: kh}
		hu := dial(t, c)
		if got := run(t, hu, "id -un"); got != "k4ttest\n" {
			t.Fatalf("got %q", got)
		}
		dir, err := os.MkdirTemp("", "k4t-user-") // t.TempDir's parent is 0700
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chown(dir, userID(t, "k4ttest"), -1)
		p := filepath.Join(dir, "mine")
		f := transport.File{Path: p, Content: []byte("x"), Mode: 0o640, Owner: "k4ttest:k4ttest"}
		if changed, err := hu.Put(ctx, f); err != nil || !changed {
			t.Fatalf("put as user: %v %v", changed, err)
		}
		if changed, err := hu.Put(ctx, f); err != nil || changed {
			t.Fatalf("second put as user: %v %v", changed, err)
		}
		if _, err := exec.LookPath("sudo"); err != nil {
			t.Log("sudo is not installed: sudo against real sshd not tested")
		}
		c.Password = "wrong"
		_, err = transport.Dial(ctx, c)
		var ce *transport.ConnectError
		if !errors.As(err, &ce) || !strings.Contains(ce.Hint, "password") {
			t.Fatalf("wrong password: %v", err)
		}
	})
}

// throwawayUser creates the local user k4ttest with a random password and
// removes it when the test ends; it skips if that user already exists.
func throwawayUser(t *testing.T) string {
	t.Helper()
	if _, err := user.Lookup("k4ttest"); err == nil {
		t.Skip("user k4ttest already exists: not touching it")
	}
	for _, tool := range []string{"useradd", "chpasswd", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s not found: apt-get install passwd", tool)
		}
	}
	if out, err := exec.Command("useradd", "-M", "-d", "/tmp", "-s", "/bin/sh", "k4ttest").CombinedOutput(); err != nil {
		t.Skipf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() {
		// sshd's session process for the user may take a moment to exit
		// after the connection closed: userdel refuses until it has.
		var out []byte
		var err error
		for i := 0; i < 50; i++ {
			if out, err = exec.Command("userdel", "k4ttest").CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("userdel k4ttest: %v %s", err, out)
	})
	b := make([]byte, 12)
	rand.Read(b)
	pw := hex.EncodeToString(b)
	cp := exec.Command("chpasswd")
	cp.Stdin = strings.NewReader("k4ttest:" + pw + "\n")
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v %s", err, out)
	}
	return pw
}

func userID(t *testing.T, name string) int {
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.Atoi(u.Uid)
	return id
}

// pidsRunning lists processes whose command line is exactly cmdline.
func pidsRunning(cmdline string) []int {
	want := strings.ReplaceAll(cmdline, " ", "\x00") + "\x00"
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && string(b) == want {
			out = append(out, pid)
		}
	}
	return out
}
