// Package state owns k4t's state directory on the bastion: a plain-text tree
// per cluster (inventory copy, pki/, rendered/HOST/…, journal, known_hosts,
// logs/) that can be copied anywhere and kept with history. Secrets are 0600
// in 0700 directories.
package state

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Dir is one cluster's state directory, e.g. ~/.k4t/clusters/NAME.
type Dir struct {
	Root string

	secretMu sync.Mutex
}

// Open creates (if needed) and returns the state dir of cluster name under root.
func Open(root, name string) (*Dir, error) {
	d := &Dir{Root: filepath.Join(root, "clusters", name)}
	for _, sub := range []string{"", "pki", "rendered", "logs"} {
		if err := os.MkdirAll(filepath.Join(d.Root, sub), 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w — check that %s is writable", err, root)
		}
		if err := os.Chmod(filepath.Join(d.Root, sub), 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	return d, nil
}

func (d *Dir) Path(elem ...string) string {
	return filepath.Join(append([]string{d.Root}, elem...)...)
}

func (d *Dir) PKI() string        { return d.Path("pki") }
func (d *Dir) KnownHosts() string { return d.Path("known_hosts") }
func (d *Dir) Journal() string    { return d.Path("journal.log") }
func (d *Dir) Logs() string       { return d.Path("logs") }
func (d *Dir) Inventory() string  { return d.Path("hosts.yaml") }
func (d *Dir) Kubeconfig() string { return d.Path("admin.conf") }

// ArtifactPins are the upstream sums and image digests verified once for
// this cluster (pkg/artifacts.Pins).
func (d *Dir) ArtifactPins() string { return d.Path("artifact-pins.yaml") }

// Rendered is where the copy of a file rendered for host lives.
func (d *Dir) Rendered(host, remotePath string) string {
	return d.Path("rendered", host, filepath.Clean("/"+remotePath))
}

// WriteFile writes data atomically under the state dir with mode; parent
// directories are 0700.
func (d *Dir) WriteFile(path string, data []byte, mode os.FileMode) error {
	if !filepath.IsAbs(path) {
		path = d.Path(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Secret reads or creates a random secret kept in the state dir (0600).
// Hosts planned in parallel ask for the same secret at once: the first
// creates it, the others read it.
func (d *Dir) Secret(name string, gen func() (string, error)) (string, error) {
	d.secretMu.Lock()
	defer d.secretMu.Unlock()
	p := d.Path("secrets", name)
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return string(b), nil
	}
	v, err := gen()
	if err != nil {
		return "", err
	}
	if err := d.WriteFile(p, []byte(v), 0o600); err != nil {
		return "", err
	}
	return v, nil
}
