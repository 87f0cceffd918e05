package certs

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Member is one etcd member: its name (node name; used as CN, SAN and directory name) and
// the addresses its server and peer certificates must carry.
type Member struct {
	Name string
	IPs  []string
	DNS  []string
}

// Spec is what the pki directory must hold.
type Spec struct {
	ClusterName string
	// Validity of leaves and CAs; 0 means DefaultValidity / DefaultCAValidity.
	Validity, CAValidity time.Duration
	EtcdMembers          []Member
	// APIServerSANs is not used yet: kubeadm issues the apiserver certificate itself with
	// our CA. Kept for when k4t issues it.
	APIServerSANs []string
}

// Relative paths (without extension) of the files Ensure manages.
const (
	KubernetesCA    = "ca"
	FrontProxyCA    = "front-proxy-ca"
	EtcdCA          = "etcd/ca"
	EtcdHealthcheck = "etcd/healthcheck-client"
	APIServerEtcd   = "apiserver-etcd-client"
	SAKey           = "sa.key"
	SAPub           = "sa.pub"
)

// EtcdServer and EtcdPeer are the relative paths (without extension) of a member's certs.
func EtcdServer(member string) string { return "etcd/" + member + "/server" }
func EtcdPeer(member string) string   { return "etcd/" + member + "/peer" }

type caDef struct{ base, cn string }

var caDefs = []caDef{
	{KubernetesCA, "kubernetes"},
	{FrontProxyCA, "front-proxy-ca"},
	{EtcdCA, "etcd-ca"},
}

type leafDef struct {
	base, ca string
	leafRequest
}

var memberName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$`)

func (s Spec) validate() error {
	var errs []error
	if s.Validity < 0 || s.CAValidity < 0 {
		errs = append(errs, fmt.Errorf("validity %s / CA validity %s must not be negative", s.Validity, s.CAValidity))
	}
	seen := map[string]bool{}
	for i, m := range s.EtcdMembers {
		field := fmt.Sprintf("etcdMembers[%d]", i)
		switch {
		case !memberName.MatchString(m.Name):
			errs = append(errs, fmt.Errorf("%s.name %q: must be a lowercase DNS name (a-z, 0-9, '-', '.')", field, m.Name))
		case seen[m.Name]:
			errs = append(errs, fmt.Errorf("%s.name %q: used twice", field, m.Name))
		}
		seen[m.Name] = true
		if len(m.IPs) == 0 {
			errs = append(errs, fmt.Errorf("%s.ips: member %q needs at least one IP", field, m.Name))
		}
		for j, ip := range m.IPs {
			if net.ParseIP(ip) == nil {
				errs = append(errs, fmt.Errorf("%s.ips[%d] %q: not an IP address", field, j, ip))
			}
		}
		for j, d := range m.DNS {
			if d == "" || net.ParseIP(d) != nil || strings.ContainsAny(d, " /@:") {
				errs = append(errs, fmt.Errorf("%s.dns[%d] %q: not a DNS name", field, j, d))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("certs: invalid spec for cluster %q: %w", s.ClusterName, errors.Join(errs...))
	}
	return nil
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// leaves lists the leaf certificates the spec asks for, in a stable order.
func (s Spec) leaves() []leafDef {
	var out []leafDef
	for _, m := range s.EtcdMembers {
		server := dedupe(slices.Concat(m.IPs, []string{"127.0.0.1", "::1", "localhost", m.Name}, m.DNS))
		peer := dedupe(slices.Concat(m.IPs, []string{m.Name}, m.DNS))
		out = append(out,
			leafDef{EtcdServer(m.Name), EtcdCA, leafRequest{cn: m.Name, hosts: server, usages: usageServerClient}},
			leafDef{EtcdPeer(m.Name), EtcdCA, leafRequest{cn: m.Name, hosts: peer, usages: usageServerClient}},
		)
	}
	out = append(out,
		leafDef{EtcdHealthcheck, EtcdCA, leafRequest{cn: "kube-etcd-healthcheck-client", usages: usageClient}},
		leafDef{APIServerEtcd, EtcdCA, leafRequest{cn: "kube-apiserver-etcd-client", usages: usageClient}},
	)
	return out
}

// Ensure makes dir hold every CA, key pair and etcd certificate spec asks for, and returns
// the relative paths of the files it wrote. It is idempotent: an existing file that is still
// right is never rewritten, so a second run writes nothing. It re-issues:
//   - a leaf that is missing, unreadable, expired at now, not signed by its current CA, or
//     whose subject, SANs or extended usages differ from spec — keeping its key when the key
//     is present and matches;
//   - a CA certificate that is missing or expired while its key is present — from the same
//     key and subject, so leaves signed earlier still verify.
//
// It refuses (with an error saying what to restore) a CA certificate without its key, and an
// unreadable CA or service-account key, since replacing those would cut off every node.
// Certificates of etcd members no longer in spec are left alone.
func Ensure(dir string, spec Spec, now time.Time) (created []string, err error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if spec.Validity == 0 {
		spec.Validity = DefaultValidity
	}
	if spec.CAValidity == 0 {
		spec.CAValidity = DefaultCAValidity
	}
	if err := mkdirs(dir, "etcd"); err != nil {
		return nil, err
	}
	e := &ensurer{dir: dir, now: now, cas: map[string]loadedCA{}}
	for _, ca := range caDefs {
		if err := e.ca(ca, spec.CAValidity); err != nil {
			return e.created, err
		}
	}
	if err := e.serviceAccount(); err != nil {
		return e.created, err
	}
	for _, l := range spec.leaves() {
		if err := e.leaf(l, spec.Validity); err != nil {
			return e.created, err
		}
	}
	return e.created, nil
}

type loadedCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

type ensurer struct {
	dir     string
	now     time.Time
	cas     map[string]loadedCA
	created []string
}

func (e *ensurer) path(rel string) string { return filepath.Join(e.dir, filepath.FromSlash(rel)) }

func (e *ensurer) write(rel string, data []byte, mode fs.FileMode) error {
	if err := writeFile(e.dir, rel, data, mode); err != nil {
		return err
	}
	e.created = append(e.created, rel)
	return nil
}

// readPair returns the raw cert and key (nil when missing).
func (e *ensurer) readPair(base string) (certPEM, keyPEM []byte, err error) {
	if certPEM, err = readFile(e.dir, crtPath(base)); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = readFile(e.dir, keyPath(base)); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

func (e *ensurer) ca(def caDef, validity time.Duration) error {
	certPEM, keyPEM, err := e.readPair(def.base)
	if err != nil {
		return err
	}
	crt, key := crtPath(def.base), keyPath(def.base)
	if keyPEM == nil {
		if certPEM != nil {
			return fmt.Errorf("certs: %s exists but its key %s is missing — restore %s from a backup, or remove %s to create a new CA (every certificate it signed must then be re-issued and redistributed)",
				e.path(crt), key, e.path(key), e.path(crt))
		}
		newCert, newKey, err := newCA(def.cn, nil, validity, e.now)
		if err != nil {
			return err
		}
		if err := e.write(key, newKey, keyMode); err != nil {
			return err
		}
		if err := e.write(crt, newCert, certMode); err != nil {
			return err
		}
		return e.remember(def.base, newCert, newKey)
	}
	k, err := parseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("certs: CA key %s: %w — restore it from a backup", e.path(key), err)
	}
	var cert *x509.Certificate
	if certPEM != nil {
		cert, _ = parseCert(certPEM) // unreadable: re-created from the key below
	}
	if cert != nil {
		switch {
		case !samePublicKey(k.Public(), cert.PublicKey):
			return fmt.Errorf("certs: %s and %s do not belong together — restore the matching pair from a backup", e.path(crt), e.path(key))
		case !cert.IsCA:
			return fmt.Errorf("certs: %s is not a CA certificate — replace it with the CA certificate for %s", e.path(crt), e.path(key))
		case e.now.Before(cert.NotAfter):
			return e.remember(def.base, certPEM, keyPEM)
		}
		// Expired: renew below, keeping key and subject.
	}
	var newCert []byte
	if cert != nil {
		newCert, err = renewCA(cert, k, validity, e.now)
	} else {
		newCert, _, err = newCA(def.cn, k, validity, e.now)
	}
	if err != nil {
		return err
	}
	if err := e.write(crt, newCert, certMode); err != nil {
		return err
	}
	return e.remember(def.base, newCert, keyPEM)
}

func (e *ensurer) remember(base string, certPEM, keyPEM []byte) error {
	cert, err := parseCert(certPEM)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", e.path(crtPath(base)), err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", e.path(keyPath(base)), err)
	}
	e.cas[base] = loadedCA{cert, key}
	return nil
}

// serviceAccount makes sa.key (RSA 2048, PKCS#1) and sa.pub (PKIX) as kubeadm does.
func (e *ensurer) serviceAccount() error {
	keyPEM, err := readFile(e.dir, SAKey)
	if err != nil {
		return err
	}
	var pub crypto.PublicKey
	if keyPEM == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("certs: service-account key: %w", err)
		}
		if err := e.write(SAKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), keyMode); err != nil {
			return err
		}
		pub = k.Public()
	} else {
		k, err := parseKey(keyPEM)
		if err != nil {
			return fmt.Errorf("certs: %s: %w — restore it from a backup (a new key invalidates every service-account token)", e.path(SAKey), err)
		}
		pub = k.Public()
	}
	pubPEM, err := readFile(e.dir, SAPub)
	if err != nil {
		return err
	}
	if pubPEM != nil {
		if b, _ := pem.Decode(pubPEM); b != nil {
			if old, err := x509.ParsePKIXPublicKey(b.Bytes); err == nil && samePublicKey(pub, old) {
				return nil
			}
		}
	}
	data, err := encodePublicKey(pub)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", e.path(SAPub), err)
	}
	return e.write(SAPub, data, certMode)
}

func (e *ensurer) leaf(l leafDef, validity time.Duration) error {
	ca, ok := e.cas[l.ca]
	if !ok {
		return fmt.Errorf("certs: internal: CA %s not loaded before %s", l.ca, l.base)
	}
	certPEM, keyPEM, err := e.readPair(l.base)
	if err != nil {
		return err
	}
	var key crypto.Signer
	if keyPEM != nil {
		key, _ = parseKey(keyPEM) // unreadable leaf key: replaced by a new one
	}
	if certPEM != nil && key != nil {
		if cert, err := parseCert(certPEM); err == nil && leafProblem(cert, key, ca.cert, l.leafRequest, e.now) == "" {
			return nil
		}
	}
	newCert, newKey, err := signLeaf(ca.cert, ca.key, l.leafRequest, key, validity, e.now)
	if err != nil {
		return err
	}
	if newKey != nil {
		if err := e.write(keyPath(l.base), newKey, keyMode); err != nil {
			return err
		}
	}
	return e.write(crtPath(l.base), newCert, certMode)
}

// leafProblem says why cert no longer fits want, or "" when it does.
func leafProblem(cert *x509.Certificate, key crypto.Signer, ca *x509.Certificate, want leafRequest, now time.Time) string {
	switch {
	case !samePublicKey(key.Public(), cert.PublicKey):
		return "key does not match"
	case !now.Before(cert.NotAfter):
		return "expired"
	case string(cert.RawIssuer) != string(ca.RawSubject) || cert.CheckSignatureFrom(ca) != nil:
		return "not signed by the current CA"
	case cert.Subject.CommonName != want.cn:
		return "common name differs"
	case !slices.Equal(sortedCopy(cert.Subject.Organization), sortedCopy(want.orgs)):
		return "organisations differ"
	case !slices.Equal(normHosts(certHosts(cert)), normHosts(want.hosts)):
		return "SANs differ"
	case !slices.Equal(sortedCopy(cert.ExtKeyUsage), sortedCopy(extUsages(want.usages))):
		return "extended key usages differ"
	}
	return ""
}

func sortedCopy[T interface{ ~int | ~string }](in []T) []T {
	out := slices.Clone(in)
	slices.Sort(out)
	if out == nil {
		out = []T{}
	}
	return out
}
