package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"k4t.io/k4t/pkg/transport"
	"k4t.io/k4t/pkg/transport/sshtest"
)

func TestCmdError(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	res, err := h.Run(context.Background(), transport.Cmd{Command: "  echo out; echo oops >&2; exit 3\n"})
	var ce *transport.CmdError
	if !errors.As(err, &ce) {
		t.Fatalf("want *CmdError, got %T %v", err, err)
	}
	if ce.ExitCode != 3 || ce.Stderr != "oops" || ce.Host != cfg.Name || ce.Command != "echo out; echo oops >&2; exit 3" {
		t.Fatalf("got %+v", ce)
	}
	if string(res.Stdout) != "out\n" {
		t.Fatalf("stdout %q", res.Stdout)
	}

	_, err = h.Run(context.Background(), transport.Cmd{Command: "cat >&2; exit 1", Stdin: []byte("token-abc"), Secret: true})
	if !errors.As(err, &ce) || strings.Contains(err.Error(), "token-abc") {
		t.Fatalf("secret output leaked: %v", err)
	}
}

func TestRunStdinAndQuoting(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	res, err := h.Run(context.Background(), transport.Cmd{Command: `tr a-z A-Z; echo "it's $((1+1))"`, Stdin: []byte("abc\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "ABC\nit's 2\n" {
		t.Fatalf("got %q", got)
	}
}

func TestRunTimeout(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	start := time.Now()
	_, err := h.Run(context.Background(), transport.Cmd{Command: "sleep 60", Timeout: 200 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 200ms on host "+cfg.Name) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	// The connection is still usable.
	if got := run(t, h, "echo after"); got != "after\n" {
		t.Fatalf("got %q", got)
	}
}

func TestRunCancel(t *testing.T) {
	k := newTestKey(t)
	killed := make(chan struct{})
	_, cfg := keyServer(t, k, sshtest.Options{ExecContext: func(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
		code := sshtest.ShellContext(ctx, cmd, stdin, stdout, stderr)
		if ctx.Err() != nil {
			close(killed) // the server saw the signal/close and killed sh
		}
		return code
	}})
	h := dial(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := h.Run(ctx, transport.Cmd{Command: "sleep 60"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	select {
	case <-killed:
	case <-time.After(10 * time.Second):
		t.Fatal("the remote sleep was not stopped")
	}
}

// fakeSudo stands in for sudo on a host where the test logs in as a
// non-root user: it checks how it is called and reads the password from
// stdin one byte at a time, as sudo -S does.
type fakeSudo struct {
	password string
	mu       sync.Mutex
	argv     []string
	bad      int
}

func (s *fakeSudo) exec(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	s.mu.Lock()
	s.argv = append(s.argv, cmd)
	s.mu.Unlock()
	switch {
	case cmd == "sudo -n true":
		fmt.Fprintln(stderr, "sudo: a password is required")
		return 1
	case strings.HasPrefix(cmd, "sudo -k -S -p '' "):
		var line []byte
		b := make([]byte, 1)
		for {
			n, err := stdin.Read(b)
			if n == 1 && b[0] != '\n' {
				line = append(line, b[0])
				continue
			}
			if n == 0 && err == nil {
				continue
			}
			break
		}
		if string(line) != s.password {
			s.mu.Lock()
			s.bad++
			s.mu.Unlock()
			fmt.Fprintln(stderr, "Sorry, try again.\nsudo: 1 incorrect password attempt")
			return 1
		}
		return sshtest.Shell(strings.TrimPrefix(cmd, "sudo -k -S -p '' "), stdin, stdout, stderr)
	case strings.HasPrefix(cmd, "sudo"):
		fmt.Fprintln(stderr, "unexpected sudo call")
		return 99
	}
	return sshtest.Shell(cmd, stdin, stdout, stderr) // as the login user
}

func TestSudoPassword(t *testing.T) {
	k := newTestKey(t)
	sudo := &fakeSudo{password: "s3cr3t-sudo"}
	srv, cfg := keyServer(t, k, sshtest.Options{Exec: sudo.exec})
	cfg.User, cfg.Sudo, cfg.SudoPassword = "alice", true, sudo.password
	h := dial(t, cfg)

	res, err := h.Run(context.Background(), transport.Cmd{Command: "cat; echo done", Stdin: []byte("payload\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "payload\ndone\n" {
		t.Fatalf("the command saw %q (the password must not reach its stdin)", got)
	}
	run(t, h, "true")

	dir := t.TempDir()
	changed, err := h.Put(context.Background(), transport.File{Path: dir + "/etc/x.conf", Content: []byte("x=1\n"), Mode: 0o640})
	if err != nil || !changed {
		t.Fatalf("put via sudo: %v %v", changed, err)
	}
	b, err := h.Get(context.Background(), dir+"/etc/x.conf")
	if err != nil || string(b) != "x=1\n" {
		t.Fatalf("get via sudo: %q %v", b, err)
	}
	if _, err := h.Get(context.Background(), dir+"/missing"); !errors.Is(err, fsErrNotExist) {
		t.Fatalf("get missing via sudo: %v", err)
	}
	for _, c := range srv.Commands() {
		if strings.Contains(c, sudo.password) {
			t.Fatalf("the sudo password is in a command line: %q", c)
		}
		if !strings.HasPrefix(c, "sudo") {
			t.Fatalf("a command ran without sudo: %q", c)
		}
	}
	if sudo.bad != 0 {
		t.Fatalf("%d bad password attempts", sudo.bad)
	}

	// A wrong password fails clearly, once, and no command runs.
	cfg.SudoPassword = "wrong"
	h2 := dial(t, cfg)
	before := srv.Execs()
	_, err = h2.Run(context.Background(), transport.Cmd{Command: "touch " + dir + "/never"})
	if err == nil || !strings.Contains(err.Error(), "sudo rejected the password") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("got %v", err)
	}
	_, err2 := h2.Run(context.Background(), transport.Cmd{Command: "true"})
	if err2 == nil || srv.Execs()-before != 2 { // sudo -n true, then the password check; nothing else
		t.Fatalf("second run: %v, %d execs", err2, srv.Execs()-before)
	}
}

func TestSudoNoPassword(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{Exec: func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
		if c, ok := strings.CutPrefix(cmd, "sudo -n "); ok {
			return sshtest.Shell(c, stdin, stdout, stderr)
		}
		fmt.Fprintln(stderr, "expected sudo -n")
		return 99
	}})
	cfg.User, cfg.Sudo = "bob", true
	h := dial(t, cfg)
	if got := run(t, h, "echo nopasswd"); got != "nopasswd\n" {
		t.Fatalf("got %q", got)
	}
}
