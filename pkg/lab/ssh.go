package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Dial opens an ssh connection to a lab host as root, checking its host key
// against the one in its upper layer. With no auth given it uses the lab key.
func (l *Lab) Dial(ctx context.Context, name string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	h, err := l.host(name)
	if err != nil {
		return nil, err
	}
	return l.dial(ctx, h, auth...)
}

func (l *Lab) dial(ctx context.Context, h Host, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	if len(auth) == 0 {
		signer, err := l.signer()
		if err != nil {
			return nil, err
		}
		auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	}
	keys, err := l.hostKeys(h.Name)
	if err != nil {
		return nil, err
	}
	var hostKey ssh.PublicKey
	for _, k := range keys {
		if strings.HasPrefix(k, ssh.KeyAlgoED25519+" ") {
			hostKey, _, _, _, err = ssh.ParseAuthorizedKey([]byte(k))
			if err != nil {
				return nil, fmt.Errorf("lab %s: host key: %w", h.Name, err)
			}
		}
	}
	if hostKey == nil {
		return nil, fmt.Errorf("lab %s: no ed25519 host key", h.Name)
	}
	cfg := &ssh.ClientConfig{
		User:              "root",
		Auth:              auth,
		HostKeyCallback:   ssh.FixedHostKey(hostKey),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           5 * time.Second,
	}
	addr := net.JoinHostPort(h.Address, "22")
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

func (l *Lab) signer() (ssh.Signer, error) {
	b, err := os.ReadFile(l.KeyFile())
	if err != nil {
		return nil, fmt.Errorf("lab: reading the lab key: %w (is the lab up?)", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("lab: parsing %s: %w", l.KeyFile(), err)
	}
	return s, nil
}

// Exec runs cmd on a host as root over ssh with the lab key and returns its
// stdout; a failure carries stderr.
func (l *Lab) Exec(ctx context.Context, name, cmd string) (string, error) {
	c, err := l.Dial(ctx, name)
	if err != nil {
		return "", fmt.Errorf("lab %s: ssh: %w", name, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("lab %s: ssh session: %w", name, err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		c.Close()
		return out.String(), fmt.Errorf("lab %s: %q: %w", name, cmd, ctx.Err())
	}
	if err != nil {
		return out.String(), fmt.Errorf("lab %s: %q: %w: %s", name, cmd, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// waitSSH waits until the host's sshd accepts the lab key, or its nspawn
// dies, or timeout passes.
func (l *Lab) waitSSH(ctx context.Context, h Host, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := l.dial(cctx, h)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		if l.nspawnPid(h.Name) == 0 {
			return fmt.Errorf("lab %s: systemd-nspawn exited before sshd answered; its log (%s) ends:\n%s", h.Name, l.logPath(h.Name), l.logTail(h.Name, 15))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab %s: sshd on %s did not answer in %s (last: %v); see %s", h.Name, h.Address, timeout, last, l.logPath(h.Name))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab %s: waiting for sshd: %w", h.Name, ctx.Err())
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// KnownHosts returns known_hosts lines ("ADDR,NAME TYPE KEY") for every host.
func (l *Lab) KnownHosts() (string, error) {
	hs, err := l.Hosts()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, h := range hs {
		keys, err := l.hostKeys(h.Name)
		if err != nil {
			return "", err
		}
		for _, k := range keys {
			fmt.Fprintf(&b, "%s,%s %s\n", h.Address, h.Name, k)
		}
	}
	return b.String(), nil
}
