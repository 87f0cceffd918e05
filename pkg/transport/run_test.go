package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
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
// non-root user: it checks how it is called, prompts on stderr as sudo -S
// -p does, and reads the password from stdin one byte at a time. cached
// plays a credential sudo still holds: it runs the command without asking.
type fakeSudo struct {
	password string
	cached   bool
	mu       sync.Mutex
	argv     []string
	bad      int
	asked    int
}

var sudoCall = regexp.MustCompile(`(?s)^sudo -S -p '([^']*)' (.*)$`)

func (s *fakeSudo) exec(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	s.mu.Lock()
	s.argv = append(s.argv, cmd)
	s.mu.Unlock()
	m := sudoCall.FindStringSubmatch(cmd)
	switch {
	case cmd == "sudo -n true":
		fmt.Fprintln(stderr, "sudo: a password is required")
		return 1
	case m != nil:
		for tries := 0; !s.cached; tries++ {
			s.mu.Lock()
			s.asked++
			s.mu.Unlock()
			fmt.Fprint(stderr, m[1])
			line, ok := readLine(stdin)
			if !ok {
				fmt.Fprintln(stderr, "sudo: no password was provided")
				return 1
			}
			if line == s.password {
				break
			}
			s.mu.Lock()
			s.bad++
			s.mu.Unlock()
			if tries == 2 {
				fmt.Fprintln(stderr, "sudo: 3 incorrect password attempts")
				return 1
			}
			fmt.Fprintln(stderr, "Sorry, try again.")
		}
		return sshtest.Shell(m[2], stdin, stdout, stderr)
	case strings.HasPrefix(cmd, "sudo"):
		fmt.Fprintln(stderr, "unexpected sudo call")
		return 99
	}
	return sshtest.Shell(cmd, stdin, stdout, stderr) // as the login user
}

// readLine reads up to a newline, one byte at a time (nothing beyond it);
// false at EOF before one.
func readLine(r io.Reader) (string, bool) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 && b[0] == '\n' {
			return string(line), true
		}
		if n == 1 {
			line = append(line, b[0])
			continue
		}
		if err != nil {
			return "", false
		}
	}
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
	// A command's stderr arrives whole, without the handshake's markers.
	if _, err := h.Run(context.Background(), transport.Cmd{Command: "echo oops >&2; exit 3"}); err == nil || !strings.Contains(err.Error(), "oops") || strings.Contains(err.Error(), "k4t-") {
		t.Fatalf("a failing command through sudo: %v", err)
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

// The password goes only to a prompt: sudo that holds a credential (or a
// rule that needs none for this command) never gets it, and the command's
// stdin is intact. A wrong password is answered once, not three times.
func TestSudoPasswordOnlyWhenAsked(t *testing.T) {
	k := newTestKey(t)
	sudo := &fakeSudo{password: "s3cr3t-sudo"}
	_, cfg := keyServer(t, k, sshtest.Options{Exec: sudo.exec})
	cfg.User, cfg.Sudo, cfg.SudoPassword = "alice", true, sudo.password
	h := dial(t, cfg)
	run(t, h, "true") // the check and this command: two prompts
	if sudo.asked != 2 {
		t.Fatalf("sudo asked %d times, want 2", sudo.asked)
	}
	sudo.cached = true
	res, err := h.Run(context.Background(), transport.Cmd{Command: "cat", Stdin: []byte(sudo.password + "-is-not-this\n")})
	if err != nil || string(res.Stdout) != sudo.password+"-is-not-this\n" {
		t.Fatalf("cached: %q %v", res.Stdout, err)
	}
	if sudo.asked != 2 {
		t.Fatalf("sudo asked %d times, want still 2", sudo.asked)
	}

	wrong := &fakeSudo{password: "right"}
	_, cfg2 := keyServer(t, k, sshtest.Options{Exec: wrong.exec})
	cfg2.User, cfg2.Sudo, cfg2.SudoPassword = "alice", true, "wrong"
	_, err = dial(t, cfg2).Run(context.Background(), transport.Cmd{Command: "true"})
	if err == nil || wrong.bad != 1 {
		t.Fatalf("wrong password: %v, %d attempts, want 1", err, wrong.bad)
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
