package certs

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cloudflare/cfssl/helpers"
)

const (
	dirMode  fs.FileMode = 0o700
	keyMode  fs.FileMode = 0o600
	certMode fs.FileMode = 0o644
)

// baseName turns "etcd/ca.crt", "etcd/ca.key" or "etcd/ca" into "etcd/ca" (slash separated).
func baseName(rel string) string {
	rel = path.Clean(filepath.ToSlash(rel))
	for _, ext := range []string{".crt", ".key"} {
		if strings.HasSuffix(rel, ext) {
			return strings.TrimSuffix(rel, ext)
		}
	}
	return rel
}

func crtPath(base string) string { return base + ".crt" }
func keyPath(base string) string { return base + ".key" }

// abs joins a slash-separated relative path onto dir, refusing paths that leave dir.
func abs(dir, rel string) (string, error) {
	if !fs.ValidPath(rel) {
		return "", fmt.Errorf("certs: %q is not a relative path inside the pki dir", rel)
	}
	return filepath.Join(dir, filepath.FromSlash(rel)), nil
}

// writeFile writes data atomically (temp file + rename) with mode, creating parent dirs 0700.
func writeFile(dir, rel string, data []byte, mode fs.FileMode) error {
	p, err := abs(dir, rel)
	if err != nil {
		return err
	}
	if err := mkdirs(dir, path.Dir(rel)); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", p, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: write %s: %w", p, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("certs: chmod %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("certs: sync %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("certs: write %s: %w", p, err)
	}
	return nil
}

// mkdirs creates dir and every directory of rel below it with mode 0700 and tightens the
// mode of those that exist with a wider one.
func mkdirs(dir, rel string) error {
	dirs := []string{dir}
	if rel != "." && rel != "" {
		cur := dir
		for _, part := range strings.Split(rel, "/") {
			cur = filepath.Join(cur, part)
			dirs = append(dirs, cur)
		}
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("certs: create dir %s: %w", d, err)
		}
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("certs: %s is not a directory; move it away", d)
		}
		if st.Mode().Perm() != dirMode {
			if err := os.Chmod(d, dirMode); err != nil {
				return fmt.Errorf("certs: chmod %s: %w", d, err)
			}
		}
	}
	return nil
}

// readFile reads rel below dir; a missing file yields (nil, nil).
func readFile(dir, rel string) ([]byte, error) {
	p, err := abs(dir, rel)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certs: read %s: %w", p, err)
	}
	return b, nil
}

// parseCert parses the first certificate of a PEM file.
func parseCert(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// parseKey parses a PEM private key (PKCS#1, SEC1 or PKCS#8).
func parseKey(data []byte) (crypto.Signer, error) {
	k, err := helpers.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("not a PEM private key: %w", err)
	}
	return k, nil
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func encodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Load reads the certificate and private key of rel ("etcd/ca", "etcd/ca.crt" or
// "etcd/ca.key" all name etcd/ca.crt + etcd/ca.key) below dir and checks that they belong
// together. Callers use it to sign further certificates with a CA.
func Load(dir, rel string) (*x509.Certificate, crypto.Signer, error) {
	base := baseName(rel)
	cb, err := readFile(dir, crtPath(base))
	if err != nil {
		return nil, nil, err
	}
	if cb == nil {
		return nil, nil, fmt.Errorf("certs: %s is missing in %s — run the pki phase to create it", crtPath(base), dir)
	}
	cert, err := parseCert(cb)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, crtPath(base)), err)
	}
	kb, err := readFile(dir, keyPath(base))
	if err != nil {
		return nil, nil, err
	}
	if kb == nil {
		return nil, nil, fmt.Errorf("certs: %s is missing in %s — restore it from a backup", keyPath(base), dir)
	}
	key, err := parseKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, keyPath(base)), err)
	}
	if !samePublicKey(key.Public(), cert.PublicKey) {
		return nil, nil, fmt.Errorf("certs: %s and %s in %s do not belong together — restore the matching pair", keyPath(base), crtPath(base), dir)
	}
	return cert, key, nil
}
