package certs

import (
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/csr"
)

// findIssuer returns the CA below dir (any *.crt that is a CA and has its key) that signed c.
func findIssuer(dir string, c *x509.Certificate) (string, error) {
	var found string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".crt") || found != "" {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		ca, err := parseCert(b)
		if err != nil || !ca.IsCA || string(ca.RawSubject) != string(c.RawIssuer) || c.CheckSignatureFrom(ca) != nil {
			return nil
		}
		found = baseName(filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", fmt.Errorf("certs: no CA in %s signed %q (issuer %q) — re-issue it with Ensure instead", dir, c.Subject, c.Issuer)
	}
	return found, nil
}

// RenewLeaf re-signs the leaf certificate relCertPath ("etcd/m1/server.crt") with the CA
// below dir that signed it, keeping its key, subject, SANs and key usages; NotAfter becomes
// now + validity (validity <= 0 keeps the old length). The key file is not touched.
func RenewLeaf(dir, relCertPath string, validity time.Duration, now time.Time) error {
	base := baseName(relCertPath)
	cert, key, err := Load(dir, base)
	if err != nil {
		return err
	}
	if cert.IsCA {
		return fmt.Errorf("certs: %s is a CA certificate — use RenewCA", crtPath(base))
	}
	caBase, err := findIssuer(dir, cert)
	if err != nil {
		return err
	}
	ca, caKey, err := Load(dir, caBase)
	if err != nil {
		return err
	}
	if validity <= 0 {
		validity = cert.NotAfter.Sub(cert.NotBefore) - backdate
	}
	req := csr.ExtractCertificateRequest(cert)
	usages := certUsages(cert)
	if len(usages) == 0 {
		return fmt.Errorf("certs: %s has no key usages to keep — re-issue it with Ensure", crtPath(base))
	}
	certPEM, _, err := signReq(ca, caKey, req, certHosts(cert), usages, key, validity, now)
	if err != nil {
		return err
	}
	return writeFile(dir, crtPath(base), certPEM, certMode)
}

// RenewCA re-signs the CA certificate relCAPath ("etcd/ca.crt") with its own key, keeping
// its key and encoded subject, so certificates it signed before still verify against the
// new one. NotAfter becomes now + validity (validity <= 0 keeps the old length, as
// initca.RenewFromSigner does). The new certificate must reach every node that trusts the
// old one; the old one stays valid until its own NotAfter.
func RenewCA(dir, relCAPath string, validity time.Duration) error {
	base := baseName(relCAPath)
	cert, key, err := Load(dir, base)
	if err != nil {
		return err
	}
	certPEM, err := renewCA(cert, key, validity, time.Now())
	if err != nil {
		return fmt.Errorf("%w (%s)", err, filepath.Join(dir, crtPath(base)))
	}
	return writeFile(dir, crtPath(base), certPEM, certMode)
}

// IssueClient makes a client-auth certificate outRel ("admin.crt" + "admin.key") signed by
// the CA caRel ("ca"), with CommonName cn and Organizations orgs, valid for validity from
// now. Like Ensure it is idempotent: an existing pair with the same subject, signed by the
// current CA and not expired at now is kept and created is false; otherwise the key is
// kept when it is valid and the certificate re-issued.
func IssueClient(dir, caRel, outRel, cn string, orgs []string, validity time.Duration, now time.Time) (created bool, err error) {
	if cn == "" {
		return false, fmt.Errorf("certs: client certificate %s needs a common name", outRel)
	}
	ca, caKey, err := Load(dir, caRel)
	if err != nil {
		return false, err
	}
	if !ca.IsCA {
		return false, fmt.Errorf("certs: %s is not a CA certificate", crtPath(baseName(caRel)))
	}
	base := baseName(outRel)
	l := leafRequest{cn: cn, orgs: slices.Clone(orgs), usages: usageClient}
	certPEM, err := readFile(dir, crtPath(base))
	if err != nil {
		return false, err
	}
	keyPEM, err := readFile(dir, keyPath(base))
	if err != nil {
		return false, err
	}
	key, _ := parseKey(keyPEM) // missing or unreadable: nil, and a new key is made
	if key != nil && certPEM != nil {
		if cert, err := parseCert(certPEM); err == nil && leafProblem(cert, key, ca, l, now) == "" {
			return false, nil
		}
	}
	newCert, newKey, err := signLeaf(ca, caKey, l, key, validity, now)
	if err != nil {
		return false, err
	}
	if newKey != nil {
		if err := writeFile(dir, keyPath(base), newKey, keyMode); err != nil {
			return false, err
		}
	}
	if err := writeFile(dir, crtPath(base), newCert, certMode); err != nil {
		return false, err
	}
	return true, nil
}
