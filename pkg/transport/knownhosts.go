package transport

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// KnownHosts verifies SSH host keys against k4t's own known_hosts file (in
// the cluster state dir, the only file k4t writes) and any read-only files
// (by default ~/.ssh/known_hosts). An unknown key is a *HostKeyError unless
// AcceptNew is set, in which case it is recorded (trust on first use). A
// changed key is always a *HostKeyError with Changed set.
type KnownHosts struct {
	file      string // k4t's own file: read and appended to
	readOnly  []string
	acceptNew bool

	mu       sync.Mutex
	check    ssh.HostKeyCallback
	accepted map[string][]ssh.PublicKey // normalized address -> keys appended this run
}

// NewKnownHosts reads file (k4t's own known_hosts, created on the first
// accepted key; it need not exist) and ~/.ssh/known_hosts when it exists.
func NewKnownHosts(file string, acceptNew bool) (*KnownHosts, error) {
	var ro []string
	if home, err := os.UserHomeDir(); err == nil {
		ro = append(ro, filepath.Join(home, ".ssh", "known_hosts"))
	}
	return NewKnownHostsFiles(file, acceptNew, ro...)
}

// NewKnownHostsFiles is NewKnownHosts with an explicit list of read-only
// files (missing ones are skipped). Tests use it to stay away from ~/.ssh.
func NewKnownHostsFiles(file string, acceptNew bool, readOnly ...string) (*KnownHosts, error) {
	k := &KnownHosts{file: file, readOnly: readOnly, acceptNew: acceptNew, accepted: map[string][]ssh.PublicKey{}}
	var files []string
	for _, f := range append([]string{file}, readOnly...) {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		files = append(files, f)
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("%w — fix or remove the bad line", err)
	}
	k.check = cb
	return k, nil
}

// File is k4t's own known_hosts file.
func (k *KnownHosts) File() string { return k.file }

// AcceptNew reports whether unknown keys are recorded.
func (k *KnownHosts) AcceptNew() bool { return k.acceptNew }

// Callback returns the host key check for the host called name (used in
// errors) at addr ("host:port").
func (k *KnownHosts) Callback(name string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		return k.verify(name, hostname, remote, key)
	}
}

func (k *KnownHosts) verify(name, hostname string, remote net.Addr, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	err := k.check(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return &HostKeyError{Host: name, Addr: hostname, Fingerprint: ssh.FingerprintSHA256(key), Changed: true, KnownHosts: k.file}
		}
		return fmt.Errorf("%s: checking host key of %s: %w", name, hostname, err)
	}
	norm := knownhosts.Normalize(hostname)
	if len(ke.Want) > 0 {
		return &HostKeyError{Host: name, Addr: hostname, Fingerprint: ssh.FingerprintSHA256(key), Changed: true, KnownHosts: k.file}
	}
	// Unknown to the files as read at start: maybe accepted during this run.
	if prev, ok := k.accepted[norm]; ok {
		for _, p := range prev {
			if keyEqual(p, key) {
				return nil
			}
		}
		return &HostKeyError{Host: name, Addr: hostname, Fingerprint: ssh.FingerprintSHA256(key), Changed: true, KnownHosts: k.file}
	}
	if !k.acceptNew || k.file == "" {
		return &HostKeyError{Host: name, Addr: hostname, Fingerprint: ssh.FingerprintSHA256(key), KnownHosts: k.file}
	}
	if err := k.append(norm, key); err != nil {
		return fmt.Errorf("%s: recording host key of %s: %w", name, hostname, err)
	}
	k.accepted[norm] = append(k.accepted[norm], key)
	return nil
}

func (k *KnownHosts) append(norm string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(k.file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(k.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(knownhosts.Line([]string{norm}, key) + "\n")
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

// HostKeyAlgorithms returns the host key algorithms to offer for addr: those
// of the keys already known for it first, so the server presents the key we
// can check, then every other supported one.
func (k *KnownHosts) HostKeyAlgorithms(addr string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var known []ssh.PublicKey
	var ke *knownhosts.KeyError
	if err := k.check(addr, probeAddr, probeKey()); errors.As(err, &ke) {
		for _, w := range ke.Want {
			known = append(known, w.Key)
		}
	}
	known = append(known, k.accepted[knownhosts.Normalize(addr)]...)
	all := ssh.SupportedAlgorithms().HostKeys
	if len(known) == 0 {
		return nil // library default
	}
	var first []string
	for _, key := range known {
		for _, a := range algorithmsForKeyType(key.Type()) {
			if !slices.Contains(first, a) && slices.Contains(all, a) {
				first = append(first, a)
			}
		}
	}
	out := first
	for _, a := range all {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func algorithmsForKeyType(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}

var probeAddr = &net.TCPAddr{IP: net.IPv4(0, 0, 0, 0), Port: 1}

// probeKey is a key no host has: checking it lists the known keys of a host.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	for i := range pub {
		pub[i] = 0x5a
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})

func keyEqual(a, b ssh.PublicKey) bool {
	return string(a.Marshal()) == string(b.Marshal())
}
