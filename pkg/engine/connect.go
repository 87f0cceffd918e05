package engine

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/transport"
)

// ResolveSecret reads a secret from the environment or a file. field names
// the inventory field for the error.
func ResolveSecret(ref *v1alpha1.SecretRef, field string) (string, error) {
	if ref == nil {
		return "", nil
	}
	switch {
	case ref.Env != "":
		v, ok := os.LookupEnv(ref.Env)
		if !ok {
			return "", fmt.Errorf("%s: environment variable %s is not set — export it before running k4t", field, ref.Env)
		}
		return v, nil
	case ref.File != "":
		b, err := os.ReadFile(transport.ExpandHome(ref.File))
		if err != nil {
			return "", fmt.Errorf("%s: %v — create the file or point %s.file elsewhere", field, err, field)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}

// SSHConfig maps an inventory host (and its bastion chain) onto a transport
// config, resolving secrets.
func SSHConfig(c *v1alpha1.Cluster, h *v1alpha1.Host, keys *transport.KnownHosts) (transport.Config, error) {
	field := fmt.Sprintf("host %s: ssh.password", h.Name)
	pw, err := ResolveSecret(h.SSH.Password, field)
	if err != nil {
		return transport.Config{}, err
	}
	sudoPW, err := ResolveSecret(h.Sudo.Password, fmt.Sprintf("host %s: sudo.password", h.Name))
	if err != nil {
		return transport.Config{}, err
	}
	cfg := transport.Config{
		Name: h.Name, Addr: net.JoinHostPort(h.Address, strconv.Itoa(h.Port)), User: h.User,
		KeyFile: h.SSH.KeyFile, Agent: h.SSH.Agent, Password: pw,
		Sudo: h.Sudo.Enabled, SudoPassword: sudoPW,
		ConnectTimeout: h.SSH.ConnectTimeout.Duration, HostKeys: keys,
	}
	jump, err := bastionChain(c, h.SSH.Bastion, keys)
	if err != nil {
		return transport.Config{}, fmt.Errorf("host %s: %w", h.Name, err)
	}
	cfg.Jump = jump
	return cfg, nil
}

// bastionChain turns the jump hosts before bastion name (Cluster.BastionChain,
// first hop first) into nested transport configs: the last hop's Jump is the
// one before it.
func bastionChain(c *v1alpha1.Cluster, name string, keys *transport.KnownHosts) (*transport.Config, error) {
	chain, err := c.BastionChain(name)
	if err != nil {
		return nil, err
	}
	var cfg *transport.Config
	for _, b := range chain {
		pw, err := ResolveSecret(b.SSH.Password, "bastion "+b.Name+": ssh.password")
		if err != nil {
			return nil, err
		}
		port := b.Port
		if port == 0 {
			port = 22
		}
		cfg = &transport.Config{Name: b.Name, Addr: net.JoinHostPort(b.Address, strconv.Itoa(port)), User: b.User,
			KeyFile: b.SSH.KeyFile, Agent: b.SSH.Agent, Password: pw,
			ConnectTimeout: b.SSH.ConnectTimeout.Duration, HostKeys: keys, Jump: cfg}
	}
	return cfg, nil
}

// Connector gives each host one connection per run.
type Connector struct {
	Cluster *v1alpha1.Cluster
	Keys    *transport.KnownHosts
	Dialer  *transport.Dialer
	pool    *transport.Pool
}

// NewConnector returns a connector dialing through d.
func NewConnector(c *v1alpha1.Cluster, keys *transport.KnownHosts, d *transport.Dialer) *Connector {
	cn := &Connector{Cluster: c, Keys: keys, Dialer: d}
	cn.pool = transport.NewPool(func(ctx context.Context, name string) (transport.Host, error) {
		h := c.Host(name)
		if h == nil {
			return nil, fmt.Errorf("no host %q in the inventory", name)
		}
		cfg, err := SSHConfig(c, h, keys)
		if err != nil {
			return nil, err
		}
		return d.Dial(ctx, cfg)
	})
	return cn
}

// Connect returns h's connection, dialing it on first use.
func (cn *Connector) Connect(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) {
	return cn.pool.Get(ctx, h.Name)
}

// Close closes every connection.
func (cn *Connector) Close() error { return cn.pool.Close() }
