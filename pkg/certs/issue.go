package certs

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/initca"
	cflog "github.com/cloudflare/cfssl/log"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
)

func init() {
	// cfssl logs every key generation and signature at info level by default.
	cflog.Level = cflog.LevelError
}

// backdate is subtracted from the caller's clock for NotBefore so a node whose clock is a
// little behind the bastion's accepts a fresh certificate.
const backdate = 5 * time.Minute

const (
	// DefaultValidity is used for leaves when Spec.Validity is 0 (kubeadm's 1 year).
	DefaultValidity = 365 * 24 * time.Hour
	// DefaultCAValidity is used for CAs when Spec.CAValidity is 0 (kubeadm's 10 years).
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
)

func caKeyRequest() *csr.KeyRequest   { return &csr.KeyRequest{A: "rsa", S: 2048} }
func leafKeyRequest() *csr.KeyRequest { return &csr.KeyRequest{A: "ecdsa", S: 256} }

// Usage names as cfssl's config.KeyUsage / config.ExtKeyUsage know them.
var (
	usageServerClient = []string{"digital signature", "key encipherment", "server auth", "client auth"}
	usageClient       = []string{"digital signature", "key encipherment", "client auth"}
)

func window(now time.Time, validity time.Duration) (notBefore, notAfter time.Time) {
	now = now.UTC().Truncate(time.Second)
	return now.Add(-backdate), now.Add(validity)
}

// csrFor makes a PEM CSR for req; with key == nil a new key is generated and returned PEM
// encoded (keyPEM is nil when key was given).
func csrFor(req *csr.CertificateRequest, key crypto.Signer) (csrPEM, keyPEM []byte, signerKey crypto.Signer, err error) {
	if key != nil {
		csrPEM, err = csr.Generate(key, req)
		return csrPEM, nil, key, err
	}
	csrPEM, keyPEM, err = csr.ParseRequest(req)
	if err != nil {
		return nil, nil, nil, err
	}
	signerKey, err = parseKey(keyPEM)
	return csrPEM, keyPEM, signerKey, err
}

// newCA self-signs a CA certificate for cn. With key == nil a new RSA 2048 key is made.
func newCA(cn string, key crypto.Signer, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	req := &csr.CertificateRequest{CN: cn, KeyRequest: caKeyRequest(), CA: &csr.CAConfig{}}
	return selfSign(req, key, config.CAConstraint{IsCA: true}, validity, now)
}

// renewCA re-signs a CA certificate with its own key, keeping subject, key (hence subject
// key id) and path length; validity <= 0 keeps the old certificate's length.
func renewCA(old *x509.Certificate, key crypto.Signer, validity time.Duration, now time.Time) ([]byte, error) {
	if !old.IsCA {
		return nil, fmt.Errorf("certs: %q is not a CA certificate", old.Subject)
	}
	if !samePublicKey(key.Public(), old.PublicKey) {
		return nil, fmt.Errorf("certs: CA %q: key does not match the certificate", old.Subject)
	}
	if validity <= 0 {
		validity = old.NotAfter.Sub(old.NotBefore) - backdate
	}
	cons := config.CAConstraint{IsCA: true}
	if old.MaxPathLen > 0 {
		cons.MaxPathLen = old.MaxPathLen
	} else if old.MaxPathLen == 0 && old.MaxPathLenZero {
		cons.MaxPathLenZero = true
	}
	certPEM, _, err := selfSign(csr.ExtractCertificateRequest(old), key, cons, validity, now)
	if err != nil {
		return nil, err
	}
	renewed, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	// Leaves name their issuer by encoded subject and authority key id; both must survive.
	if string(renewed.RawSubject) != string(old.RawSubject) {
		return nil, fmt.Errorf("certs: CA %q: renewal would change the encoded subject, and leaves would no longer chain to it", old.Subject)
	}
	if len(old.SubjectKeyId) > 0 && string(renewed.SubjectKeyId) != string(old.SubjectKeyId) {
		return nil, fmt.Errorf("certs: CA %q: renewal would change the subject key id (old one not derived from the key the usual way); leaves' authority key id would no longer match", old.Subject)
	}
	return certPEM, nil
}

// selfSign is what initca.New / initca.NewFromSigner do (CSR, then a local signer without
// CA certificate under initca.CAPolicy), with NotBefore/NotAfter from the caller's clock.
func selfSign(req *csr.CertificateRequest, key crypto.Signer, cons config.CAConstraint, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("certs: CA %q: validity must be positive, got %s", req.CN, validity)
	}
	if req.CA == nil {
		req.CA = &csr.CAConfig{}
	}
	req.CA.Expiry = validity.String()
	req.CA.PathLength = cons.MaxPathLen
	req.CA.PathLenZero = cons.MaxPathLenZero
	csrPEM, keyPEM, key, err := csrFor(req, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA %q: %w", req.CN, err)
	}
	policy := initca.CAPolicy()
	policy.Default.Expiry = validity
	policy.Default.ExpiryString = validity.String()
	policy.Default.CAConstraint = cons
	s, err := local.NewSigner(key, nil, signer.DefaultSigAlgo(key), policy)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA %q: %w", req.CN, err)
	}
	nb, na := window(now, validity)
	certPEM, err = s.Sign(signer.SignRequest{Request: string(csrPEM), NotBefore: nb, NotAfter: na})
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA %q: %w", req.CN, err)
	}
	return certPEM, keyPEM, nil
}

// leafRequest describes a certificate to sign.
type leafRequest struct {
	cn     string
	orgs   []string
	hosts  []string // IPs and DNS names; nil for none
	usages []string // cfssl usage names
}

func (l leafRequest) csrRequest() *csr.CertificateRequest {
	req := &csr.CertificateRequest{CN: l.cn, Hosts: l.hosts, KeyRequest: leafKeyRequest()}
	for _, o := range l.orgs {
		req.Names = append(req.Names, csr.Name{O: o})
	}
	return req
}

// signLeaf signs l with the CA; with key == nil a new ECDSA P-256 key is made and returned.
func signLeaf(ca *x509.Certificate, caKey crypto.Signer, l leafRequest, key crypto.Signer, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	return signReq(ca, caKey, l.csrRequest(), l.hosts, l.usages, key, validity, now)
}

func signReq(ca *x509.Certificate, caKey crypto.Signer, req *csr.CertificateRequest, hosts, usages []string, key crypto.Signer, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("certs: %q: validity must be positive, got %s", req.CN, validity)
	}
	csrPEM, keyPEM, _, err := csrFor(req, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %q: %w", req.CN, err)
	}
	// The Default profile must be valid (cfssl checks Expiry != 0) and is the one used.
	policy := &config.Signing{Default: &config.SigningProfile{Usage: usages, Expiry: validity, ExpiryString: validity.String()}}
	s, err := local.NewSigner(caKey, ca, signer.DefaultSigAlgo(caKey), policy)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %q: %w", req.CN, err)
	}
	nb, na := window(now, validity)
	if len(hosts) == 0 {
		hosts = nil // nil keeps the CSR's (empty) SANs; an empty slice would too, but be plain
	}
	certPEM, err = s.Sign(signer.SignRequest{Request: string(csrPEM), Hosts: hosts, NotBefore: nb, NotAfter: na})
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign %q with %q: %w", req.CN, ca.Subject.CommonName, err)
	}
	return certPEM, keyPEM, nil
}

// certHosts lists a certificate's SANs as cfssl hosts (IPs, DNS names, emails, URIs).
func certHosts(c *x509.Certificate) []string {
	var hosts []string
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	hosts = append(hosts, c.DNSNames...)
	hosts = append(hosts, c.EmailAddresses...)
	for _, u := range c.URIs {
		hosts = append(hosts, u.String())
	}
	return hosts
}

// normHosts is the sorted set of hosts with IPs in canonical form and DNS names lowercased.
func normHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			out = append(out, "ip:"+ip.String())
		} else {
			out = append(out, "name:"+strings.ToLower(h))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// certUsages turns a certificate's key usages back into cfssl usage names.
func certUsages(c *x509.Certificate) []string {
	var out []string
	for _, name := range sortedKeys(config.KeyUsage) {
		if bit := config.KeyUsage[name]; c.KeyUsage&bit != 0 && !slices.ContainsFunc(out, func(n string) bool { return config.KeyUsage[n] == bit }) {
			out = append(out, name)
		}
	}
	for _, eku := range c.ExtKeyUsage {
		for _, name := range sortedKeys(config.ExtKeyUsage) {
			if config.ExtKeyUsage[name] == eku {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func extUsages(usages []string) []x509.ExtKeyUsage {
	var out []x509.ExtKeyUsage
	for _, u := range usages {
		if e, ok := config.ExtKeyUsage[u]; ok {
			out = append(out, e)
		}
	}
	return out
}
