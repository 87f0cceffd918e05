package artifacts

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// Pins are the sums of the upstream files and the digests of the images
// that k4t verified once for a cluster, kept in its state dir: a later run
// checks against them, never against what upstream (or a mirror) publishes
// that day. Keys are upstream URLs and image references, before any mirror.
// Safe for concurrent use.
type Pins struct {
	path string // "" keeps them in memory only
	mu   sync.Mutex
	m    map[string]string
}

const pinsHeader = `# Sums and image digests that k4t verified once, by upstream URL and image
# reference. A later run checks against these, never against what upstream or
# a mirror publishes that day. Delete a line to let k4t verify it anew.
`

// LoadPins reads the pins file at p (a missing file has no pins); p ""
// keeps pins in memory.
func LoadPins(p string) (*Pins, error) {
	ps := &Pins{path: p, m: map[string]string{}}
	if p == "" {
		return ps, nil
	}
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return ps, nil
	}
	if err != nil {
		return nil, fmt.Errorf("artifact pins: %w", err)
	}
	if err := yaml.Unmarshal(b, &ps.m); err != nil {
		return nil, fmt.Errorf("artifact pins %s: %w (fix or delete the file: k4t then verifies every artifact anew)", p, err)
	}
	if ps.m == nil {
		ps.m = map[string]string{}
	}
	for k, v := range ps.m {
		if !sha256Re.MatchString(strings.TrimPrefix(v, "sha256:")) {
			return nil, fmt.Errorf("artifact pins %s: %s: %q is not a sha256 (delete the line: k4t then verifies it anew)", p, k, v)
		}
	}
	return ps, nil
}

// Get is the pinned value of key, or "".
func (p *Pins) Get(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[key]
}

// Set pins key to v, writing the file (atomically) when that changes it.
func (p *Pins) Set(key, v string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m[key] == v {
		return nil
	}
	p.m[key] = v
	if p.path == "" {
		return nil
	}
	b, err := yaml.Marshal(p.m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.path), 0o700); err != nil {
		return fmt.Errorf("artifact pins: %w", err)
	}
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, append([]byte(pinsHeader), b...), 0o644); err != nil {
		return fmt.Errorf("artifact pins: %w", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("artifact pins: %w", err)
	}
	return nil
}

// sumFor reads the sum of file from a checksum file as projects publish
// them: a bare sum (kubeadm.sha256), or lines "sum  name" or "sum *name"
// (sha256sum's text and binary modes; SHA256SUMS, *.sha256sum).
func sumFor(data []byte, file, from string) (string, error) {
	var bare []string
	for _, l := range bytes.Split(data, []byte("\n")) {
		f := strings.Fields(string(l))
		switch {
		case len(f) == 1 && sha256Re.MatchString(strings.ToLower(f[0])):
			bare = append(bare, strings.ToLower(f[0]))
		case len(f) >= 2 && sha256Re.MatchString(strings.ToLower(f[0])):
			if path.Base(strings.TrimPrefix(f[1], "*")) == file {
				return strings.ToLower(f[0]), nil
			}
		}
	}
	if len(bare) == 1 {
		return bare[0], nil
	}
	return "", fmt.Errorf("%s has no sha256 for %s", from, file)
}
