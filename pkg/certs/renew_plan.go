package certs

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// ResignPEM renews a leaf certificate whose private key stays elsewhere (on a node): it
// signs a new certificate for the same public key, subject, SANs and key usages with the
// CA caRel ("ca") below dir, valid from now - 5 min to now + validity (validity <= 0 keeps
// the old length). certPEM is the old certificate; it must have been signed by that CA.
// k4t uses it for kubelet client certificates, whose key never leaves the node.
func ResignPEM(dir, caRel string, certPEM []byte, validity time.Duration, now time.Time) ([]byte, error) {
	old, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: old certificate: %w", err)
	}
	if old.IsCA {
		return nil, fmt.Errorf("certs: %q is a CA certificate — use RenewCA", old.Subject.CommonName)
	}
	ca, caKey, err := Load(dir, caRel)
	if err != nil {
		return nil, err
	}
	if string(old.RawIssuer) != string(ca.RawSubject) || old.CheckSignatureFrom(ca) != nil {
		return nil, fmt.Errorf("certs: %q was not signed by %s — it cannot be renewed with it", old.Subject.CommonName, crtPath(baseName(caRel)))
	}
	if validity <= 0 {
		validity = old.NotAfter.Sub(old.NotBefore) - backdate
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	nb, na := window(now, validity)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               old.Subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              old.KeyUsage,
		ExtKeyUsage:           old.ExtKeyUsage,
		BasicConstraintsValid: true,
		DNSNames:              old.DNSNames,
		IPAddresses:           old.IPAddresses,
		EmailAddresses:        old.EmailAddresses,
		URIs:                  old.URIs,
	}
	if na.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter // a leaf never outlives its CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, old.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: re-sign %q: %w", old.Subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// NeedsRenewal reports whether any leaf row (not a CA, no error) expires within d of its
// check, and lists those rows' "host: name" in order.
func NeedsRenewal(rows []Expiry, d time.Duration) (bool, []string) {
	var which []string
	for _, r := range rows {
		if r.IsCA || r.Err != "" {
			continue
		}
		if r.Left < d {
			which = append(which, r.Host+": "+r.Name)
		}
	}
	return len(which) > 0, which
}
