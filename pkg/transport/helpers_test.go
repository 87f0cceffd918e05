package transport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"k4t.io/k4t/pkg/transport"
	"k4t.io/k4t/pkg/transport/sshtest"
)

// testKey is a client key written to a file.
type testKey struct {
	signer ssh.Signer
	priv   ed25519.PrivateKey
	file   string
}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "k4t test")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	return testKey{signer: s, priv: priv, file: file}
}

// newKnownHosts returns a KnownHosts on a fresh file, never reading ~/.ssh.
func newKnownHosts(t testing.TB, acceptNew bool) *transport.KnownHosts {
	t.Helper()
	kh, err := transport.NewKnownHostsFiles(filepath.Join(t.TempDir(), "known_hosts"), acceptNew)
	if err != nil {
		t.Fatal(err)
	}
	return kh
}

// keyServer starts a server accepting k and returns it with a Config that
// logs in to it (accepting its host key).
func keyServer(t testing.TB, k testKey, opts sshtest.Options) (*sshtest.Server, transport.Config) {
	t.Helper()
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, k.signer.PublicKey())
	srv := sshtest.Start(t, opts)
	return srv, transport.Config{
		Name:           "h-" + srv.Addr(),
		Addr:           srv.Addr(),
		User:           "root",
		KeyFile:        k.file,
		ConnectTimeout: 5 * time.Second,
		HostKeys:       newKnownHosts(t, true),
	}
}

func dial(t testing.TB, cfg transport.Config) transport.Host {
	t.Helper()
	h, err := transport.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func run(t testing.TB, h transport.Host, cmd string) string {
	t.Helper()
	res, err := h.Run(context.Background(), transport.Cmd{Command: cmd, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return string(res.Stdout)
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
