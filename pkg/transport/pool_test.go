package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"k4t.io/k4t/pkg/transport"
	"k4t.io/k4t/pkg/transport/sshtest"
)

func TestPoolDialsOnce(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	p := transport.NewPool(func(ctx context.Context, name string) (transport.Host, error) {
		calls.Add(1)
		<-release
		if name == "bad" {
			return nil, errors.New("unreachable")
		}
		return transport.NewFake(name), nil
	})
	var wg sync.WaitGroup
	hosts := make([]transport.Host, 10)
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := p.Get(context.Background(), "a")
			if err != nil {
				t.Error(err)
			}
			hosts[i] = h
		}()
	}
	close(release)
	wg.Wait()
	for _, h := range hosts {
		if h != hosts[0] {
			t.Fatal("different hosts for one name")
		}
	}
	for i := 0; i < 3; i++ {
		if _, err := p.Get(context.Background(), "bad"); err == nil {
			t.Fatal("want error")
		}
	}
	if calls.Load() != 2 || p.Dials() != 2 {
		t.Fatalf("calls %d, dials %d", calls.Load(), p.Dials())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !hosts[0].(*transport.Fake).Closed {
		t.Fatal("host not closed")
	}
	if _, err := p.Get(context.Background(), "a"); err == nil {
		t.Fatal("Get after Close")
	}
}

func TestPoolCancelledDialIsRetried(t *testing.T) {
	n := 0
	p := transport.NewPool(func(ctx context.Context, name string) (transport.Host, error) {
		n++
		if n == 1 {
			return nil, fmt.Errorf("dial: %w", context.Canceled)
		}
		return transport.NewFake(name), nil
	})
	if _, err := p.Get(context.Background(), "a"); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if _, err := p.Get(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
}

// Hosts behind one bastion share its connection; every host gets one.
func TestSSHPoolSharesJump(t *testing.T) {
	k := newTestKey(t)
	kh := newKnownHosts(t, true)
	jump, jcfg := keyServer(t, k, sshtest.Options{})
	jcfg.Name, jcfg.HostKeys = "bastion", kh
	cfgs := map[string]transport.Config{}
	var servers []*sshtest.Server
	for i := 0; i < 5; i++ {
		srv, cfg := keyServer(t, k, sshtest.Options{NoForwarding: true})
		cfg.Name, cfg.HostKeys, cfg.Jump = "", kh, &jcfg
		cfgs[fmt.Sprintf("node%d", i)] = cfg
		servers = append(servers, srv)
	}
	pool, dialer := newSSHPool(cfgs)
	var wg sync.WaitGroup
	for round := 0; round < 3; round++ {
		for name := range cfgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := pool.Get(context.Background(), name)
				if err != nil {
					t.Error(err)
					return
				}
				if out, err := h.Run(context.Background(), transport.Cmd{Command: "echo " + h.Name()}); err != nil || strings.TrimSpace(string(out.Stdout)) != name {
					t.Errorf("%s: %q %v", name, out.Stdout, err)
				}
			}()
		}
	}
	wg.Wait()
	if _, err := pool.Get(context.Background(), "nope"); err == nil {
		t.Fatal("unknown host dialled")
	}
	if jump.Conns() != 1 || jump.Forwards() != 5 || pool.Dials() != 6 || dialer.Conns() != 6 {
		t.Fatalf("jump conns %d forwards %d, pool dials %d, ssh conns %d", jump.Conns(), jump.Forwards(), pool.Dials(), dialer.Conns())
	}
	for _, s := range servers {
		if s.Conns() != 1 {
			t.Fatalf("%s: %d conns", s.Addr(), s.Conns())
		}
	}
	pool.Close()
	dialer.Close()
	if err := waitFor(func() bool { return jump.ActiveConns() == 0 }); err != nil {
		t.Fatal("bastion connection left open after Close")
	}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := transport.NewFake("m1").
		Respond("uname -m", "x86_64\n").
		RespondRegexp(`^systemctl is-active \S+$`, "active\n").
		Fail("kubeadm", 2, "boom")
	f.OnRun = func(c transport.Cmd) (transport.Result, error) {
		return transport.Result{Stdout: []byte("hook:" + c.Command)}, nil
	}
	if r, _ := f.Run(ctx, transport.Cmd{Command: "uname -m"}); string(r.Stdout) != "x86_64\n" {
		t.Fatalf("%q", r.Stdout)
	}
	if r, _ := f.Run(ctx, transport.Cmd{Command: "systemctl is-active etcd"}); string(r.Stdout) != "active\n" {
		t.Fatalf("%q", r.Stdout)
	}
	var ce *transport.CmdError
	if _, err := f.Run(ctx, transport.Cmd{Command: "kubeadm init"}); !errors.As(err, &ce) || ce.ExitCode != 2 {
		t.Fatal(err)
	}
	if r, _ := f.Run(ctx, transport.Cmd{Command: "other"}); string(r.Stdout) != "hook:other" {
		t.Fatalf("%q", r.Stdout)
	}
	file := transport.File{Path: "/etc/x", Content: []byte("x"), Mode: 0o600}
	if ch, _ := f.Put(ctx, file); !ch {
		t.Fatal("first put unchanged")
	}
	if ch, _ := f.Put(ctx, file); ch {
		t.Fatal("second put changed")
	}
	fi, _ := f.Stat(ctx, "/etc/x")
	if !fi.Exists || fi.Mode != 0o600 || fi.Owner != "root:root" || fi.SHA256 != sha("x") {
		t.Fatalf("%+v", fi)
	}
	if _, err := f.Get(ctx, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if len(f.Runs) != 4 || len(f.Puts) != 2 || len(f.Writes) != 1 || strings.Join(f.Commands(), "|") != "uname -m|systemctl is-active etcd|kubeadm init|other" {
		t.Fatalf("log: %v puts=%d writes=%v", f.Commands(), len(f.Puts), f.Writes)
	}
}

// newSSHPool is a Pool over SSH for the given configs (keyed by host name),
// sharing jump host connections. Its Dialer counts every SSH connection; the
// caller closes both.
func newSSHPool(configs map[string]transport.Config) (*transport.Pool, *transport.Dialer) {
	d := transport.NewDialer()
	p := transport.NewPool(func(ctx context.Context, name string) (transport.Host, error) {
		cfg, ok := configs[name]
		if !ok {
			return nil, &transport.ConnectError{Host: name, Err: errors.New("no such host in the inventory")}
		}
		if cfg.Name == "" {
			cfg.Name = name
		}
		return d.Dial(ctx, cfg)
	})
	return p, d
}
