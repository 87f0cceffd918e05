package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// DefaultConnectTimeout bounds TCP connect plus SSH handshake when
// Config.ConnectTimeout is zero.
const DefaultConnectTimeout = 10 * time.Second

// Config says how to reach and log in to one host. Secrets are already
// resolved by the caller (which also knows where they came from).
type Config struct {
	// Log receives this host's records; nil takes the Dialer's.
	Log  *slog.Logger
	Name string // inventory name, used in logs and errors
	Addr string // host:port
	User string // login user; empty means root

	KeyFile  string // private key file (not passphrase-protected)
	Agent    bool   // use the agent at $SSH_AUTH_SOCK
	Password string // password (also answers keyboard-interactive)

	// Sudo runs every command through sudo when User is not root.
	Sudo         bool
	SudoPassword string

	// Jump is the host to tunnel through; it may have its own Jump.
	Jump *Config

	ConnectTimeout time.Duration
	// HostKeys verifies host keys (of jump hosts too). Nil means
	// ~/.ssh/known_hosts only, read-only: an unknown host fails.
	HostKeys *KnownHosts
}

func (c *Config) user() string {
	if c.User == "" {
		return "root"
	}
	return c.User
}

func (c *Config) useSudo() bool { return c.Sudo && c.user() != "root" }

// chainKey identifies a connection: same user, address and route.
func (c *Config) chainKey() string {
	k := c.user() + "@" + c.Addr
	if c.Jump != nil {
		k += " via " + c.Jump.chainKey()
	}
	return k
}

// Dial opens the one SSH connection to cfg's host (through its jump hosts,
// which this Host owns and closes with it).
func Dial(ctx context.Context, cfg Config) (Host, error) {
	d := &Dialer{owned: true}
	return d.Dial(ctx, cfg)
}

// Dialer opens SSH connections and shares the connections to jump hosts among
// all hosts behind them (one connection per jump host for the run). It counts
// every SSH connection it opens, jump hops included.
type Dialer struct {
	owned bool // jump connections belong to the dialled host (package Dial)
	// Log receives the connections' debug and warning records; nil
	// discards them. Hosts whose Config has its own Log use that.
	Log *slog.Logger

	conns    atomic.Int64
	uploaded sync.Map // host name -> *atomic.Int64
	jumps    shared[*ssh.Client]
}

// NewDialer returns a Dialer that shares jump host connections until Close.
func NewDialer() *Dialer { return &Dialer{} }

// Conns is the number of SSH connections opened (jump hops included).
func (d *Dialer) Conns() int64 { return d.conns.Load() }

// Uploaded is the number of file bytes its hosts' Put sent, per host (0
// when every file was already in place).
func (d *Dialer) Uploaded() map[string]int64 {
	out := map[string]int64{}
	d.uploaded.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// uploadCounter is the byte count of the host named name.
func (d *Dialer) uploadCounter(name string) *atomic.Int64 {
	c, _ := d.uploaded.LoadOrStore(name, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// Close closes the shared jump host connections. Hosts dialled through them
// stop working; close those first.
func (d *Dialer) Close() error {
	for _, c := range d.jumps.drain() {
		c.Close()
	}
	return nil
}

// Dial opens the connection to cfg's host.
func (d *Dialer) Dial(ctx context.Context, cfg Config) (Host, error) {
	if cfg.Name == "" {
		cfg.Name = cfg.Addr
	}
	dial := func(ctx context.Context) (*ssh.Client, []*ssh.Client, error) {
		var owned []*ssh.Client
		var via *ssh.Client
		if cfg.Jump != nil {
			var err error
			via, owned, err = d.jump(ctx, cfg.Jump)
			if err != nil {
				return nil, nil, &ConnectError{Host: cfg.Name, Addr: cfg.Addr, Err: err}
			}
		}
		c, err := d.connect(ctx, &cfg, via)
		if err != nil {
			closeAll(owned)
			return nil, nil, err
		}
		return c, owned, nil
	}
	c, owned, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	h := newSSHHost(cfg, c, owned)
	h.uploaded = d.uploadCounter(cfg.Name)
	// A connection that drops mid-run (sshd restarted, its child killed) is
	// dialled again, with the same host key checks, before the next command.
	h.redial = dial
	return h, nil
}

// jump returns a client connected to j (through its own jumps). With an
// owning Dialer, the returned clients (innermost last) must be closed by the
// caller; otherwise they are shared and owned by the Dialer.
func (d *Dialer) jump(ctx context.Context, j *Config) (*ssh.Client, []*ssh.Client, error) {
	if d.owned {
		var owned []*ssh.Client
		var via *ssh.Client
		if j.Jump != nil {
			var err error
			via, owned, err = d.jump(ctx, j.Jump)
			if err != nil {
				return nil, nil, err
			}
		}
		c, err := d.connect(ctx, j, via)
		if err != nil {
			closeAll(owned)
			return nil, nil, err
		}
		return c, append(owned, c), nil
	}
	c, err := d.jumps.do(ctx, j.chainKey(), func() (*ssh.Client, error) {
		var via *ssh.Client
		if j.Jump != nil {
			var err error
			if via, _, err = d.jump(ctx, j.Jump); err != nil {
				return nil, err
			}
		}
		return d.connect(ctx, j, via)
	}, func(error) bool { return false }) // do not keep failures: a later host may retry
	return c, nil, err
}

func closeAll(cs []*ssh.Client) {
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i].Close()
	}
}

// connect opens one SSH connection to cfg, over via when set.
func (d *Dialer) connect(ctx context.Context, cfg *Config, via *ssh.Client) (*ssh.Client, error) {
	if cfg.Log == nil { // also for the host Dial makes of cfg afterwards
		cfg.Log = d.Log
	}
	name := cfg.Name
	if name == "" {
		name = cfg.Addr
	}
	cerr := func(err error, hint string) error {
		return &ConnectError{Host: name, Addr: cfg.Addr, Err: err, Hint: hint}
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, cerr(err, "the address must be host:port")
	}
	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	auth, aerr := newAuth(cfg)
	if aerr != nil {
		return nil, cerr(aerr.err, aerr.hint)
	}
	defer auth.close()

	hk := cfg.HostKeys
	if hk == nil {
		var herr error
		if hk, herr = defaultKnownHosts(); herr != nil {
			return nil, cerr(herr, "fix ~/.ssh/known_hosts")
		}
	}
	ccfg := &ssh.ClientConfig{
		User:              cfg.user(),
		Auth:              auth.methods,
		HostKeyCallback:   hk.Callback(name),
		HostKeyAlgorithms: hk.HostKeyAlgorithms(cfg.Addr),
		Timeout:           timeout,
	}

	start := time.Now()
	var conn net.Conn
	var err error
	if via != nil {
		conn, err = via.DialContext(ctx, "tcp", cfg.Addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", cfg.Addr)
	}
	if err != nil {
		hint := "check the address and port, the firewall, and that sshd runs there"
		if via != nil {
			hint = "the jump host could not reach it: " + hint
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s: %w", timeout, err)
		}
		return nil, cerr(err, hint)
	}
	// The handshake honours ctx: closing the conn aborts it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, cfg.Addr, ccfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, cerr(fmt.Errorf("ssh handshake timed out after %s: %w", timeout, ctx.Err()),
			"check that sshd answers on this address (and is not overloaded)")
	}
	if err != nil {
		conn.Close()
		var hke *HostKeyError
		if errors.As(err, &hke) {
			return nil, hke
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, cerr(err, fmt.Sprintf("authentication as %q failed (tried: %s) — check ssh.keyFile / ssh.password in hosts.yaml",
				cfg.user(), strings.Join(auth.tried, ", ")))
		}
		return nil, cerr(err, "the SSH handshake failed: check that sshd runs on this address")
	}
	d.conns.Add(1)
	cfg.log().Debug("ssh connected", "host", name, "addr", cfg.Addr, "user", cfg.user(), "jump", via != nil, "duration", time.Since(start))
	return ssh.NewClient(sc, chans, reqs), nil
}

var defaultKnownHosts = sync.OnceValues(func() (*KnownHosts, error) {
	return NewKnownHosts("", false)
})

type authSet struct {
	methods []ssh.AuthMethod
	tried   []string
	closers []func()
}

func (a *authSet) close() {
	for _, c := range a.closers {
		c()
	}
}

type authErr struct {
	err  error
	hint string
}

// newAuth builds the auth methods in the order agent, key file, password
// (+ keyboard-interactive answering it). Public keys from the agent and the
// key file are offered by one method: the ssh client tries each method once.
func newAuth(cfg *Config) (*authSet, *authErr) {
	a := &authSet{}
	var signers []ssh.Signer
	var agentClient agent.ExtendedAgent
	var agentProblem error
	if cfg.Agent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			agentProblem = errors.New("ssh.agent is set but SSH_AUTH_SOCK is empty")
		} else if c, err := net.Dial("unix", sock); err != nil {
			agentProblem = fmt.Errorf("ssh-agent at %s: %w", sock, err)
		} else {
			a.closers = append(a.closers, func() { c.Close() })
			agentClient = agent.NewClient(c)
			a.tried = append(a.tried, "ssh-agent")
		}
	}
	if cfg.KeyFile != "" {
		path := ExpandHome(cfg.KeyFile)
		pem, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, &authErr{err, fmt.Sprintf("the key file %s does not exist: fix ssh.keyFile in hosts.yaml", path)}
			}
			return nil, &authErr{err, fmt.Sprintf("cannot read the key file %s", path)}
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			var pm *ssh.PassphraseMissingError
			if errors.As(err, &pm) {
				return nil, &authErr{fmt.Errorf("%s is protected by a passphrase", path),
					"load it into ssh-agent (ssh-add " + path + ") and set ssh.agent: true"}
			}
			return nil, &authErr{fmt.Errorf("%s: %w", path, err), "ssh.keyFile must be an unencrypted private key (OpenSSH or PEM)"}
		}
		signers = append(signers, s)
		a.tried = append(a.tried, "key file "+path)
	}
	if agentClient != nil || len(signers) > 0 {
		a.methods = append(a.methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			out := signers
			if agentClient != nil {
				as, err := agentClient.Signers()
				if err == nil {
					out = append(as, signers...)
				}
			}
			return out, nil
		}))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		a.methods = append(a.methods, ssh.Password(pw),
			ssh.KeyboardInteractive(passwordOnly(pw)))
		a.tried = append(a.tried, "password")
	}
	if len(a.methods) == 0 {
		if agentProblem != nil {
			return nil, &authErr{agentProblem, "start ssh-agent and load the key, or set ssh.keyFile / ssh.password in hosts.yaml"}
		}
		return nil, &authErr{errors.New("no authentication method configured"), "set ssh.keyFile, ssh.agent or ssh.password in hosts.yaml"}
	}
	if agentProblem != nil {
		cfg.log().Debug("ssh-agent unavailable, trying other methods", "host", cfg.Name, "err", agentProblem)
	}
	return a, nil
}

// ExpandHome turns a leading ~ into the user's home directory.
func ExpandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// discard is the logger of a host that was given none.
var discard = slog.New(slog.DiscardHandler)

func (c *Config) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return discard
}

// passwordOnly answers keyboard-interactive prompts that ask for a password
// (and do not echo) with pw, and refuses any other question (a one-time
// code, a yes/no) instead of sending the password to it.
func passwordOnly(pw string) ssh.KeyboardInteractiveChallenge {
	return func(_, _ string, questions []string, echos []bool) ([]string, error) {
		ans := make([]string, len(questions))
		for i, q := range questions {
			if (i < len(echos) && echos[i]) || !strings.Contains(strings.ToLower(q), "password") {
				return nil, fmt.Errorf("keyboard-interactive asks %q, which k4t does not answer with the password — use a key (ssh.keyFile) for this host", strings.TrimSpace(q))
			}
			ans[i] = pw
		}
		return ans, nil
	}
}
