// Package sshtest is an in-process SSH server for tests and benchmarks of
// k4t's transport: password/public-key/keyboard-interactive auth, exec (by
// default real `sh -c` on this machine), the sftp subsystem (real filesystem
// or in memory), direct-tcpip forwarding (so it can be a jump host), exit
// status and signals. It is cheap: 1,000 servers in one process share one
// host key and cost one goroutine each while idle.
package sshtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// ExecFunc runs one command and returns its exit status.
type ExecFunc func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int

// ExecContextFunc is ExecFunc with a context cancelled when the client sends
// a signal or closes the session.
type ExecContextFunc func(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) int

// Options configure a Server. With neither Password nor AuthorizedKeys set,
// any public key is accepted.
type Options struct {
	// Password is accepted for password and keyboard-interactive auth.
	Password string
	// KeyboardInteractiveOnly offers the password only through
	// keyboard-interactive (as PAM setups do), not the password method.
	KeyboardInteractiveOnly bool
	// AuthorizedKeys are accepted for public key auth.
	AuthorizedKeys []ssh.PublicKey
	// HostKey is the server's key; nil means the process-wide shared key.
	HostKey ssh.Signer
	// Exec handles commands; nil means Shell (real sh -c on this machine).
	Exec ExecFunc
	// ExecContext, if set, is used instead of Exec.
	ExecContext ExecContextFunc
	// InMemSFTP serves sftp from memory (sftp.InMemHandler) instead of the
	// real filesystem.
	InMemSFTP bool
	// SFTPHandlers, if set, serve sftp (implies in-memory); a test that
	// keeps the handlers can read and write the same files its Exec sees.
	SFTPHandlers *sftp.Handlers
	// NoSFTP refuses the sftp subsystem.
	NoSFTP bool
	// NoForwarding refuses direct-tcpip (the server is no jump host).
	NoForwarding bool
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
}

// Server is a running SSH server.
type Server struct {
	opts Options
	cfg  *ssh.ServerConfig
	ln   net.Listener
	key  ssh.PublicKey

	conns     atomic.Int64
	execs     atomic.Int64
	sftpIn    atomic.Int64
	forwards  atomic.Int64
	closed    atomic.Bool
	mu        sync.Mutex
	active    map[net.Conn]struct{}
	commands  []string
	wg        sync.WaitGroup
	inMemOnce sync.Once
	inMem     sftp.Handlers
}

var sharedKey = sync.OnceValue(func() ssh.Signer {
	s, err := NewHostKey()
	if err != nil {
		panic(err)
	}
	return s
})

// NewHostKey returns a fresh ed25519 host key.
func NewHostKey() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// Start starts a server and stops it when tb's test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("sshtest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// New starts a server; the caller must Close it.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, active: map[net.Conn]struct{}{}}
	hk := opts.HostKey
	if hk == nil {
		hk = sharedKey()
	}
	s.key = hk.PublicKey()
	cfg := &ssh.ServerConfig{}
	if opts.Password != "" {
		check := func(pw []byte) bool {
			return subtle.ConstantTimeCompare(pw, []byte(opts.Password)) == 1
		}
		if !opts.KeyboardInteractiveOnly {
			cfg.PasswordCallback = func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
				if check(pw) {
					return nil, nil
				}
				return nil, errors.New("wrong password")
			}
		}
		cfg.KeyboardInteractiveCallback = func(_ ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ans, err := ask("", "", []string{"Password: "}, []bool{false})
			if err != nil {
				return nil, err
			}
			if len(ans) == 1 && check([]byte(ans[0])) {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	if len(opts.AuthorizedKeys) > 0 || opts.Password == "" {
		cfg.PublicKeyCallback = func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if len(opts.AuthorizedKeys) == 0 {
				return nil, nil
			}
			for _, k := range opts.AuthorizedKeys {
				if string(k.Marshal()) == string(key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("key not authorized")
		}
	}
	cfg.AddHostKey(hk)
	s.cfg = cfg
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port is the listening port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.key }

// Conns is the number of SSH connections accepted (handshake completed).
func (s *Server) Conns() int64 { return s.conns.Load() }

// ActiveConns is the number of connections open now.
func (s *Server) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// Execs is the number of commands run.
func (s *Server) Execs() int64 { return s.execs.Load() }

// SFTPBytesIn is the number of bytes received on sftp channels.
func (s *Server) SFTPBytesIn() int64 { return s.sftpIn.Load() }

// Forwards is the number of direct-tcpip channels opened through this server.
func (s *Server) Forwards() int64 { return s.forwards.Load() }

// Commands returns every command line received, in order.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// DropConns closes every open connection, as a killed sshd child would,
// and keeps listening.
func (s *Server) DropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.active {
		c.Close()
	}
}

// Close stops the server and drops its connections.
func (s *Server) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.ln.Close()
	s.mu.Lock()
	for c := range s.active {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.active[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.active, c)
		s.mu.Unlock()
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	s.conns.Add(1)
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.session(ch, creqs) }()
		case "direct-tcpip":
			if s.opts.NoForwarding {
				nc.Reject(ssh.Prohibited, "forwarding disabled")
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.forward(nc) }()
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
	sc.Close()
	wg.Wait()
}

// session serves one session channel: one exec or the sftp subsystem.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done chan struct{}
	defer func() {
		cancel()
		if done != nil {
			<-done
		}
		ch.Close()
	}()
	for req := range reqs {
		switch req.Type {
		case "exec", "subsystem":
			var p struct{ Value string }
			if done != nil || ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				continue
			}
			if req.Type == "subsystem" && (p.Value != "sftp" || s.opts.NoSFTP) {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			d := make(chan struct{})
			done = d
			if req.Type == "exec" {
				go func() { defer close(d); s.exec(ctx, ch, p.Value) }()
			} else {
				go func() { defer close(d); s.sftp(ch) }()
			}
		case "signal":
			cancel()
			if req.WantReply {
				req.Reply(true, nil)
			}
		case "env", "pty-req":
			req.Reply(req.Type == "pty-req", nil)
		default:
			req.Reply(false, nil)
		}
	}
}

func (s *Server) exec(ctx context.Context, ch ssh.Channel, cmd string) {
	s.execs.Add(1)
	s.mu.Lock()
	s.commands = append(s.commands, cmd)
	s.mu.Unlock()
	var code int
	switch {
	case s.opts.ExecContext != nil:
		code = s.opts.ExecContext(ctx, cmd, ch, ch, ch.Stderr())
	case s.opts.Exec != nil:
		code = s.opts.Exec(cmd, ch, ch, ch.Stderr())
	default:
		code = ShellContext(ctx, cmd, ch, ch, ch.Stderr())
	}
	ch.CloseWrite()
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	ch.Close()
}

type countingChannel struct {
	ssh.Channel
	n *atomic.Int64
}

func (c countingChannel) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (s *Server) sftp(ch ssh.Channel) {
	rw := countingChannel{ch, &s.sftpIn}
	if s.opts.InMemSFTP || s.opts.SFTPHandlers != nil {
		s.inMemOnce.Do(func() {
			if s.opts.SFTPHandlers != nil {
				s.inMem = *s.opts.SFTPHandlers
			} else {
				s.inMem = sftp.InMemHandler()
			}
		})
		srv := sftp.NewRequestServer(rw, s.inMem)
		srv.Serve()
		srv.Close()
	} else {
		srv, err := sftp.NewServer(rw)
		if err != nil {
			ch.Close()
			return
		}
		srv.Serve()
		srv.Close()
	}
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
	ch.Close()
}

func (s *Server) forward(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	target := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	c, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	s.forwards.Add(1)
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() { io.Copy(ch, c); ch.CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, ch); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
	ch.Close()
	c.Close()
}

// Shell runs cmd with sh -c on this machine: the default Exec.
func Shell(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	return ShellContext(context.Background(), cmd, stdin, stdout, stderr)
}

// ShellContext is Shell, killing the process group when ctx is done.
func ShellContext(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := exec.Command("sh", "-c", cmd)
	// k4t's stat keeps checksums in /run/k4t on a host; here, the host is
	// this machine: keep them out of its /run.
	c.Env = append(os.Environ(), "K4T_SUM_CACHE="+filepath.Join(os.TempDir(), "k4t-test-sums"))
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.WaitDelay = time.Second
	if err := c.Start(); err != nil {
		fmt.Fprintln(stderr, err)
		return 127
	}
	stop := context.AfterFunc(ctx, func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL) })
	defer stop()
	err := c.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}
