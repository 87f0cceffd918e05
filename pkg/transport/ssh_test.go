package transport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"k4t.io/k4t/pkg/transport"
	"k4t.io/k4t/pkg/transport/sshtest"
)

func TestKeyAuth(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	if got := run(t, h, "echo hello"); got != "hello\n" {
		t.Fatalf("got %q", got)
	}
	if h.Name() != cfg.Name {
		t.Fatalf("name %q", h.Name())
	}
}

func TestKeyAuthRejected(t *testing.T) {
	k := newTestKey(t)
	other := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	cfg.KeyFile = other.file
	_, err := transport.Dial(context.Background(), cfg)
	var ce *transport.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("want *ConnectError, got %T %v", err, err)
	}
	for _, want := range []string{"key file " + other.file, "ssh.keyFile / ssh.password in hosts.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestPasswordAuth(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: "pa55"})
	cfg := transport.Config{Name: "pw", Addr: srv.Addr(), User: "root", Password: "pa55", HostKeys: newKnownHosts(t, true)}
	h := dial(t, cfg)
	if got := run(t, h, "echo ok"); got != "ok\n" {
		t.Fatalf("got %q", got)
	}

	cfg.Password = "wrong"
	_, err := transport.Dial(context.Background(), cfg)
	var ce *transport.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(ce.Hint, "tried: password") || !strings.Contains(ce.Hint, "ssh.password") {
		t.Fatalf("want auth ConnectError naming the password, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the password leaked into the error: %v", err)
	}
}

func TestKeyboardInteractiveAuth(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Password: "pa55", KeyboardInteractiveOnly: true})
	h := dial(t, transport.Config{Name: "ki", Addr: srv.Addr(), Password: "pa55", HostKeys: newKnownHosts(t, true)})
	if got := run(t, h, "echo ki"); got != "ki\n" {
		t.Fatalf("got %q", got)
	}
}

func TestAgentAuth(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: k.priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(ring, c); c.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	cfg.KeyFile = ""
	cfg.Agent = true
	h := dial(t, cfg)
	if got := run(t, h, "echo agent"); got != "agent\n" {
		t.Fatalf("got %q", got)
	}
}

func TestKeyFileProblems(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})

	cfg.KeyFile = filepath.Join(t.TempDir(), "nope")
	_, err := transport.Dial(context.Background(), cfg)
	var ce *transport.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(ce.Hint, cfg.KeyFile) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing key: got %v", err)
	}

	blk, err := ssh.MarshalPrivateKeyWithPassphrase(k.priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(t.TempDir(), "enc")
	if err := os.WriteFile(enc, pemEncode(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.KeyFile = enc
	_, err = transport.Dial(context.Background(), cfg)
	if !errors.As(err, &ce) || !strings.Contains(ce.Hint, "ssh-agent") || !strings.Contains(ce.Hint, "ssh.agent: true") {
		t.Fatalf("passphrase key: got %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	k := newTestKey(t)
	_, err = transport.Dial(context.Background(), transport.Config{Name: "gone", Addr: addr, KeyFile: k.file, HostKeys: newKnownHosts(t, true)})
	var ce *transport.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(ce.Hint, "sshd runs") || ce.Host != "gone" {
		t.Fatalf("got %v", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // accept and stay silent
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	k := newTestKey(t)
	start := time.Now()
	_, err = transport.Dial(context.Background(), transport.Config{Name: "mute", Addr: ln.Addr().String(), KeyFile: k.file,
		ConnectTimeout: 300 * time.Millisecond, HostKeys: newKnownHosts(t, true)})
	var ce *transport.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("dial took %s", d)
	}
}

func TestJumpHost(t *testing.T) {
	k := newTestKey(t)
	kh := newKnownHosts(t, true)
	jump, jcfg := keyServer(t, k, sshtest.Options{})
	target, tcfg := keyServer(t, k, sshtest.Options{NoForwarding: true})
	jcfg.Name, jcfg.HostKeys = "bastion", kh
	tcfg.HostKeys, tcfg.Jump = kh, &jcfg
	h := dial(t, tcfg)
	if got := run(t, h, "echo via"); got != "via\n" {
		t.Fatalf("got %q", got)
	}
	run(t, h, "true")
	if jump.Forwards() != 1 || jump.Conns() != 1 || target.Conns() != 1 {
		t.Fatalf("forwards %d, jump conns %d, target conns %d", jump.Forwards(), jump.Conns(), target.Conns())
	}
	// The jump host's key was verified (and, with AcceptNew, recorded) too.
	b, _ := os.ReadFile(kh.File())
	for _, s := range []*sshtest.Server{jump, target} {
		if !strings.Contains(string(b), knownhosts.Normalize(s.Addr())) {
			t.Errorf("known_hosts lacks %s:\n%s", s.Addr(), b)
		}
	}
}

func TestJumpChain(t *testing.T) {
	k := newTestKey(t)
	kh := newKnownHosts(t, true)
	j1, c1 := keyServer(t, k, sshtest.Options{})
	j2, c2 := keyServer(t, k, sshtest.Options{})
	target, tcfg := keyServer(t, k, sshtest.Options{NoForwarding: true})
	c1.HostKeys, c2.HostKeys, tcfg.HostKeys = kh, kh, kh
	c2.Jump = &c1
	tcfg.Jump = &c2
	h := dial(t, tcfg)
	if got := run(t, h, "echo two hops"); got != "two hops\n" {
		t.Fatalf("got %q", got)
	}
	if j1.Forwards() != 1 || j2.Forwards() != 1 || target.Conns() != 1 {
		t.Fatalf("forwards j1=%d j2=%d target conns=%d", j1.Forwards(), j2.Forwards(), target.Conns())
	}
	h.Close()
	// Closing the host closes its (owned) jump connections.
	if err := waitFor(func() bool { return j1.ActiveConns() == 0 && j2.ActiveConns() == 0 }); err != nil {
		t.Fatalf("jump connections left open: j1=%d j2=%d", j1.ActiveConns(), j2.ActiveConns())
	}
}

func TestJumpHostKeyVerified(t *testing.T) {
	k := newTestKey(t)
	_, jcfg := keyServer(t, k, sshtest.Options{})
	_, tcfg := keyServer(t, k, sshtest.Options{NoForwarding: true})
	strict := newKnownHosts(t, false)
	jcfg.Name, jcfg.HostKeys = "bastion", strict
	tcfg.HostKeys, tcfg.Jump = strict, &jcfg
	_, err := transport.Dial(context.Background(), tcfg)
	var hke *transport.HostKeyError
	if !errors.As(err, &hke) || hke.Host != "bastion" {
		t.Fatalf("want HostKeyError for the bastion, got %v", err)
	}
}

func TestUnknownHostKey(t *testing.T) {
	k := newTestKey(t)
	_, cfg := keyServer(t, k, sshtest.Options{})
	cfg.HostKeys = newKnownHosts(t, false)
	_, err := transport.Dial(context.Background(), cfg)
	var hke *transport.HostKeyError
	if !errors.As(err, &hke) || hke.Changed {
		t.Fatalf("want unknown HostKeyError, got %v", err)
	}
	if !strings.Contains(err.Error(), "--accept-new-hosts") || !strings.Contains(err.Error(), "SHA256:") {
		t.Fatalf("message: %v", err)
	}
	if _, err := os.Stat(cfg.HostKeys.File()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("known_hosts written without --accept-new-hosts: %v", err)
	}
}

func TestAcceptNewThenStrict(t *testing.T) {
	k := newTestKey(t)
	srv, cfg := keyServer(t, k, sshtest.Options{})
	file := filepath.Join(t.TempDir(), "state", "known_hosts")
	kh, err := transport.NewKnownHostsFiles(file, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HostKeys = kh
	dial(t, cfg).Close()
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts: %v %v", st, err)
	}
	b, _ := os.ReadFile(file)
	_, port, _ := net.SplitHostPort(srv.Addr())
	if !strings.HasPrefix(string(b), "[127.0.0.1]:"+port+" ssh-ed25519 ") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("known_hosts content %q", b)
	}
	strict, err := transport.NewKnownHostsFiles(file, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HostKeys = strict
	dial(t, cfg)
}

func TestAcceptNewConcurrent(t *testing.T) {
	k := newTestKey(t)
	kh := newKnownHosts(t, true)
	var wg sync.WaitGroup
	var servers []*sshtest.Server
	for i := 0; i < 8; i++ {
		srv, cfg := keyServer(t, k, sshtest.Options{})
		servers = append(servers, srv)
		cfg.HostKeys = kh
		for j := 0; j < 2; j++ { // two dials race on one unknown host
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := transport.Dial(context.Background(), cfg)
				if err != nil {
					t.Error(err)
					return
				}
				h.Close()
			}()
		}
	}
	wg.Wait()
	b, _ := os.ReadFile(kh.File())
	if n := strings.Count(string(b), "\n"); n != len(servers) {
		t.Fatalf("%d lines for %d hosts:\n%s", n, len(servers), b)
	}
}

func TestChangedHostKey(t *testing.T) {
	k := newTestKey(t)
	srv, cfg := keyServer(t, k, sshtest.Options{})
	file := filepath.Join(t.TempDir(), "known_hosts")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewPublicKey(other.Public())
	line := knownhosts.Line([]string{knownhosts.Normalize(srv.Addr())}, otherPub) + "\n"
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	kh, err := transport.NewKnownHostsFiles(file, true) // even with accept-new
	if err != nil {
		t.Fatal(err)
	}
	cfg.HostKeys = kh
	_, err = transport.Dial(context.Background(), cfg)
	var hke *transport.HostKeyError
	if !errors.As(err, &hke) || !hke.Changed || !strings.Contains(err.Error(), "HOST KEY CHANGED") {
		t.Fatalf("want changed HostKeyError, got %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != line {
		t.Fatalf("known_hosts modified: %q", b)
	}
}

func TestReadOnlyKnownHosts(t *testing.T) {
	// A key in the read-only file (~/.ssh/known_hosts) is trusted; the
	// server offers it even when it is listed under a non-default port.
	k := newTestKey(t)
	srv, cfg := keyServer(t, k, sshtest.Options{})
	user := filepath.Join(t.TempDir(), "user_known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(srv.Addr())}, srv.HostKey()) + "\n"
	if err := os.WriteFile(user, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(t.TempDir(), "known_hosts")
	kh, err := transport.NewKnownHostsFiles(own, false, user)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HostKeys = kh
	dial(t, cfg)
	if _, err := os.Stat(own); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("k4t's own file was written")
	}
}

func waitFor(cond func() bool) error {
	for i := 0; i < 500; i++ {
		if cond() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("condition not met in 5s")
}

func TestKeyboardInteractiveAnswersOnlyPasswordPrompts(t *testing.T) {
	answer := transport.PasswordOnly("s3cret")
	if ans, err := answer("", "", []string{"Password: "}, []bool{false}); err != nil || len(ans) != 1 || ans[0] != "s3cret" {
		t.Fatalf("password prompt: %v %v", ans, err)
	}
	if ans, err := answer("", "", nil, nil); err != nil || len(ans) != 0 {
		t.Fatalf("no question: %v %v", ans, err)
	}
	for _, q := range []struct {
		prompt string
		echo   bool
	}{{"Verification code: ", false}, {"Password (visible): ", true}} {
		if ans, err := answer("", "", []string{q.prompt}, []bool{q.echo}); err == nil || strings.Contains(strings.Join(ans, ""), "s3cret") {
			t.Errorf("%q answered with the password: %v", q.prompt, ans)
		}
	}
}

// A connection that drops between two commands (its sshd child killed) is
// dialled again for the next command and sftp; the run goes on.
func TestDroppedConnectionIsRedialled(t *testing.T) {
	k := newTestKey(t)
	srv, cfg := keyServer(t, k, sshtest.Options{})
	h := dial(t, cfg)
	ctx := context.Background()
	if _, err := h.Run(ctx, transport.Cmd{Command: "true"}); err != nil {
		t.Fatal(err)
	}
	srv.DropConns()
	deadline := time.Now().Add(5 * time.Second)
	for srv.ActiveConns() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.Run(ctx, transport.Cmd{Command: "true"}); err != nil {
		t.Fatalf("command after the drop: %v", err)
	}
	if _, err := h.Put(ctx, transport.File{Path: "/tmp/k4t-redial-test", Content: []byte("x\n"), Mode: 0o644}); err != nil {
		t.Fatalf("put after the drop: %v", err)
	}
	if srv.Conns() != 2 {
		t.Errorf("%d connections, want 2 (the first and one redial)", srv.Conns())
	}
}

// A connection that drops while a command runs: a read-only command is run
// again on a new connection; any other fails with ErrConnDropped, since
// whether it ran is unknown.
func TestConnectionDroppedMidCommand(t *testing.T) {
	for _, readOnly := range []bool{true, false} {
		k := newTestKey(t)
		srv, cfg := keyServer(t, k, sshtest.Options{})
		h := dial(t, cfg)
		marker := filepath.Join(t.TempDir(), "ran")
		go func() {
			for i := 0; i < 500; i++ {
				if _, err := os.Stat(marker); err == nil {
					srv.DropConns()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		// The first run marks the file and sleeps until dropped; a second
		// run finds it marked and answers at once.
		cmd := fmt.Sprintf("if [ -e %[1]s ]; then echo again; else touch %[1]s; sleep 10; fi", marker)
		res, err := h.Run(context.Background(), transport.Cmd{Command: cmd, Timeout: 20 * time.Second, ReadOnly: readOnly})
		switch {
		case readOnly && (err != nil || strings.TrimSpace(string(res.Stdout)) != "again"):
			t.Errorf("read-only command after the drop: %q, %v; want it run again", res.Stdout, err)
		case !readOnly && !errors.Is(err, transport.ErrConnDropped):
			t.Errorf("mutating command after the drop: %v; want ErrConnDropped", err)
		}
	}
}
