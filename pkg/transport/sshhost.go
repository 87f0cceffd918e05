package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sshHost is a Host over one SSH connection: every command is a session on
// it and the one sftp client (opened on first use) is a channel on it too.
type sshHost struct {
	cfg Config
	// connMu guards client and owned, which a redial replaces.
	connMu sync.Mutex
	client *ssh.Client
	owned  []*ssh.Client // jump connections closed with this host
	// redial opens a new connection to the same host (nil: never redial).
	redial func(ctx context.Context) (*ssh.Client, []*ssh.Client, error)
	// uploaded counts the bytes Put sent (the Dialer's count; nil: none).
	uploaded *atomic.Int64

	sftpMu  sync.Mutex
	sftpc   *sftp.Client
	sftpFor *ssh.Client // the connection sftpc runs on
	sftpErr error

	sudoMu   sync.Mutex
	sudoDone bool
	sudoPass bool // sudo wants the password (else sudo -n works)
	sudoErr  error

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// KeepaliveInterval is how often an idle connection is probed; a probe
// unanswered for as long closes it, so commands fail fast instead of
// waiting out their timeout on a dead link.
const KeepaliveInterval = 30 * time.Second

func newSSHHost(cfg Config, c *ssh.Client, owned []*ssh.Client) *sshHost {
	h := &sshHost{cfg: cfg, client: c, owned: owned, closed: make(chan struct{})}
	go h.keepalive(c, KeepaliveInterval)
	return h
}

// DialContext opens a TCP connection from the host's side of the SSH
// connection, redialling once when that connection is gone.
func (h *sshHost) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c := h.conn()
	nc, err := c.DialContext(ctx, network, addr)
	if err == nil || h.redial == nil || ctx.Err() != nil {
		return nc, err
	}
	if _, _, perr := c.SendRequest("keepalive@openssh.com", true, nil); perr == nil {
		return nil, err // the connection is fine: the target refused
	}
	if rerr := h.reconnect(ctx, c); rerr != nil {
		return nil, fmt.Errorf("%w (redialling failed too: %v)", err, rerr)
	}
	return h.conn().DialContext(ctx, network, addr)
}

// conn is the current connection.
func (h *sshHost) conn() *ssh.Client {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	return h.client
}

// reconnect replaces the connection old, which is gone, with a new one,
// unless another caller already did. Commands that were running on old are
// not retried (they may have run); only what had not started goes on.
func (h *sshHost) reconnect(ctx context.Context, old *ssh.Client) error {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.client != old {
		return nil
	}
	select {
	case <-h.closed:
		return errors.New("connection closed")
	default:
	}
	c, owned, err := h.redial(ctx)
	if err != nil {
		return err
	}
	old.Close()
	closeAll(h.owned)
	h.client, h.owned = c, owned
	h.cfg.log().Warn("ssh connection lost, redialled", "host", h.Name(), "addr", h.cfg.Addr)
	go h.keepalive(c, KeepaliveInterval)
	return nil
}

// session opens a session, redialling once when the connection is gone. It
// returns the connection the session runs on.
func (h *sshHost) session(ctx context.Context) (*ssh.Session, *ssh.Client, error) {
	c := h.conn()
	sess, err := c.NewSession()
	if err == nil || h.redial == nil {
		return sess, c, err
	}
	if rerr := h.reconnect(ctx, c); rerr != nil {
		return nil, c, fmt.Errorf("%w (redialling failed too: %v)", err, rerr)
	}
	c = h.conn()
	sess, err = c.NewSession()
	return sess, c, err
}

// gone tells whether connection c is dead: a keepalive request fails or
// goes unanswered for a few seconds.
func gone(c *ssh.Client) bool {
	replied := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		replied <- err
	}()
	select {
	case err := <-replied:
		return err != nil
	case <-time.After(5 * time.Second):
		return true
	}
}

func (h *sshHost) keepalive(client *ssh.Client, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.closed:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			// Any reply, even "unsupported", proves the peer is there.
			_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		select {
		case <-h.closed:
			return
		case err := <-replied:
			if err == nil {
				continue
			}
			h.cfg.log().Debug("ssh connection lost", "host", h.Name(), "err", err)
		case <-time.After(every):
			h.cfg.log().Warn("ssh connection unresponsive, closing it", "host", h.Name(), "addr", h.cfg.Addr)
		}
		client.Close()
		return
	}
}

func (h *sshHost) Name() string { return h.cfg.Name }

func (h *sshHost) Close() error {
	h.closeOnce.Do(func() {
		close(h.closed)
		h.sftpMu.Lock()
		if h.sftpc != nil {
			h.sftpc.Close()
		}
		h.sftpErr = errors.New("connection closed")
		h.sftpMu.Unlock()
		h.connMu.Lock()
		h.closeErr = h.client.Close()
		closeAll(h.owned)
		h.connMu.Unlock()
	})
	return h.closeErr
}

// Run runs cmd with sh -c, through sudo when configured.
//
// Stopping a remote command (timeout, cancel) is done three ways, since
// OpenSSH ignores signal requests on root logins: the TERM signal request;
// `pkill -f` of a random marker carried in the command line (a trailing
// comment), which hits the remote timeout(1) that then signals the whole
// process group (KILL 2s later); and timeout(1) bounding the command by
// itself should the connection drop.
func (h *sshHost) Run(ctx context.Context, cmd Cmd) (Result, error) {
	if h.cfg.useSudo() {
		if err := h.checkSudo(ctx); err != nil {
			return Result{}, err
		}
	}
	marker := randSuffix()
	line, pw := h.withSudo(remoteLine(cmd, marker), marker)
	res, err := h.exec(ctx, cmd, line, cmd.Stdin, pw, marker)
	if cmd.ReadOnly && h.redial != nil && errors.Is(err, ErrConnDropped) && ctx.Err() == nil {
		h.cfg.log().Warn("ssh connection dropped during a read-only command; running it again on a new one",
			"host", h.Name(), "cmd", trimCommand(cmd.Command))
		return h.exec(ctx, cmd, line, cmd.Stdin, pw, marker)
	}
	return res, err
}

// withSudo prefixes line with sudo when configured (checkSudo must have
// run). When sudo wants a password it also returns the handshake that hands
// it over (see sudoLine).
func (h *sshHost) withSudo(line, marker string) (string, *sudoHandshake) {
	switch {
	case !h.cfg.useSudo():
		return line, nil
	case h.sudoPass:
		return sudoLine(line, marker), &sudoHandshake{password: []byte(h.cfg.SudoPassword), marker: marker}
	default:
		return "sudo -n " + line, nil
	}
}

// remoteLine is cmd as the remote login shell runs it.
func remoteLine(cmd Cmd, marker string) string {
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	secs := int64(timeout/time.Second) + 5 // the client's timer fires first
	return fmt.Sprintf("timeout -k 2 %d sh -c %s", secs, ShellQuote(cmd.Command+"\n# k4t-run-"+marker))
}

// killRemote stops the command carrying marker (see Run).
func (h *sshHost) killRemote(ctx context.Context, marker string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// "[x]yz" matches "xyz" but not this pkill's own command line.
	kill := "pkill -TERM -f " + ShellQuote("k4t-run-["+marker[:1]+"]"+marker[1:])
	m := randSuffix()
	line, pw := h.withSudo(kill, m)
	h.exec(ctx, Cmd{Command: kill, Timeout: 5 * time.Second}, line, nil, pw, "")
}

// checkSudo finds out once whether sudo needs the password and whether the
// configured one is right, so no command ever gets the password as input by
// mistake and a wrong password fails clearly.
func (h *sshHost) checkSudo(ctx context.Context) error {
	h.sudoMu.Lock()
	defer h.sudoMu.Unlock()
	if h.sudoDone {
		return h.sudoErr
	}
	probe := Cmd{Command: "sudo -n true", Timeout: 30 * time.Second}
	_, err := h.exec(ctx, probe, probe.Command, nil, nil, "")
	var ce *CmdError
	switch {
	case err == nil:
		h.sudoPass = false
	case errors.As(err, &ce) && ce.ExitCode == 127:
		err = fmt.Errorf("%s: sudo is not installed (login user %q is not root) — install sudo or log in as root", h.Name(), h.cfg.user())
	case errors.As(err, &ce):
		if h.cfg.SudoPassword == "" {
			err = fmt.Errorf("%s: sudo needs a password for %q — set sudo.password in hosts.yaml (or allow NOPASSWD)", h.Name(), h.cfg.user())
			break
		}
		m := randSuffix()
		check := Cmd{Command: "true", Timeout: 30 * time.Second, Secret: true}
		_, err = h.exec(ctx, check, sudoLine("true", m), nil, &sudoHandshake{password: []byte(h.cfg.SudoPassword), marker: m}, "")
		if errors.As(err, &ce) {
			err = fmt.Errorf("%s: sudo rejected the password of %q (exit %d) — check sudo.password in hosts.yaml and that %q may use sudo",
				h.Name(), h.cfg.user(), ce.ExitCode, h.cfg.user())
		}
		h.sudoPass = true
	}
	if err != nil && ctx.Err() != nil {
		return err // do not remember a cancellation
	}
	h.sudoDone, h.sudoErr = true, err
	return err
}

// exec runs line (already wrapped) in a new session on the connection.
// sudo, when set, hands sudo its password when it asks (stdin follows only
// once the command runs). marker, when set, names the command for killRemote.
func (h *sshHost) exec(ctx context.Context, cmd Cmd, line string, stdin []byte, sudo *sudoHandshake, marker string) (Result, error) {
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	short := trimCommand(cmd.Command)
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("%s: command %q not started: %w", h.Name(), short, err)
	}
	sess, conn, err := h.session(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("%s: opening an ssh session: %w — the connection to %s is gone; re-run", h.Name(), err, h.cfg.Addr)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	var sudoErr *sudoStderr
	if sudo != nil {
		in, err := sess.StdinPipe()
		if err != nil {
			return Result{}, fmt.Errorf("%s: starting %q: %w", h.Name(), short, err)
		}
		sudoErr = sudo.start(in, stdin, &stderr)
		sess.Stderr = sudoErr
	} else if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	if err := sess.Start(line); err != nil {
		return Result{}, fmt.Errorf("%s: starting %q: %w", h.Name(), short, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var stopErr error
	select {
	case err = <-done:
	case <-ctx.Done():
		stopErr = fmt.Errorf("%s: command %q stopped after %s: %w", h.Name(), short, time.Since(start).Round(time.Millisecond), ctx.Err())
	case <-timer.C:
		stopErr = fmt.Errorf("%s: command %q timed out after %s on host %s: %w", h.Name(), short, timeout, h.Name(), context.DeadlineExceeded)
	}
	if stopErr != nil {
		sess.Signal(ssh.SIGTERM)
		if marker != "" {
			h.killRemote(ctx, marker)
		}
		select {
		case <-done:
		case <-time.After(3 * time.Second): // timeout(1) sends KILL after 2s
			sess.Signal(ssh.SIGKILL)
			sess.Close()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
		}
		h.cfg.log().Debug("ssh run stopped", "host", h.Name(), "cmd", short, "duration", time.Since(start), "err", stopErr)
		return Result{}, stopErr
	}
	if sudoErr != nil {
		sudoErr.flush()
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(start)}
	code := 0
	if err != nil {
		var ee *ssh.ExitError
		var em *ssh.ExitMissingError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitStatus()
			if sig := ee.Signal(); sig != "" {
				res.Stderr = append(res.Stderr, []byte("\n(killed by signal "+sig+")")...)
			}
		case gone(conn):
			conn.Close() // unanswered is as good as gone: the next session redials at once
			h.cfg.log().Debug("ssh connection dropped", "host", h.Name(), "cmd", short, "duration", res.Duration, "err", err)
			return res, fmt.Errorf("%s: command %q: %w — re-run to go on", h.Name(), short, ErrConnDropped)
		case errors.As(err, &em):
			code = -1
			res.Stderr = append(res.Stderr, []byte("\n(no exit status)")...)
		default:
			h.cfg.log().Debug("ssh run failed", "host", h.Name(), "cmd", short, "duration", res.Duration, "err", err)
			return res, fmt.Errorf("%s: command %q: %w", h.Name(), short, err)
		}
	}
	h.cfg.log().Debug("ssh run", "host", h.Name(), "cmd", short, "exit", code, "duration", res.Duration)
	if code != 0 {
		tail := stderrTail(res.Stderr)
		if cmd.Secret {
			tail = "(output hidden: the command is marked secret)"
		}
		return res, &CmdError{Host: h.Name(), Command: short, ExitCode: code, Stderr: tail}
	}
	return res, nil
}

// sftp returns the host's one sftp client, opening it on first use.
func (h *sshHost) sftp() (*sftp.Client, error) {
	h.sftpMu.Lock()
	defer h.sftpMu.Unlock()
	conn := h.conn()
	if h.sftpFor == conn && (h.sftpc != nil || h.sftpErr != nil) {
		return h.sftpc, h.sftpErr
	}
	if h.sftpc != nil { // made for a connection that was since redialled
		h.sftpc.Close()
		h.sftpc = nil
	}
	h.sftpFor, h.sftpErr = conn, nil
	c, err := sftp.NewClient(conn)
	if err != nil {
		h.sftpErr = fmt.Errorf("%s: starting sftp: %w — enable the sftp subsystem in sshd_config (Subsystem sftp internal-sftp)", h.Name(), err)
		return nil, h.sftpErr
	}
	h.sftpc = c
	return c, nil
}

// ShellQuote quotes s for sh, in single quotes. The one quoting function
// of k4t.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func trimCommand(c string) string {
	c = strings.TrimSpace(c)
	if i := strings.IndexByte(c, '\n'); i >= 0 {
		c = c[:i] + " …"
	}
	if len(c) > 200 {
		c = c[:200] + "…"
	}
	return c
}

func stderrTail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
