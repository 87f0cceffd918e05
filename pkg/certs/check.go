package certs

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Expiry is one row of an expiry report. Name is the file (relative path, or
// "<kubeconfig>#user/<name>" for an embedded certificate), CA the Name of the CA that
// signed it ("" for a self-signed CA, the issuer's subject when its CA is not among the
// files). Err is set when the file is missing, unreadable, or does not fit its key or CA;
// such rows are reported, never skipped.
type Expiry struct {
	Host, Name, CA string
	IsCA           bool
	NotAfter       time.Time
	Left           time.Duration
	Err            string
}

// Kubeconfig files are recognised by these suffixes; certificates by .crt and .pem.
var kubeconfigExts = []string{".conf", ".kubeconfig"}

func isCertFile(name string) bool {
	return strings.HasSuffix(name, ".crt") || strings.HasSuffix(name, ".pem")
}
func isKubeconfig(name string) bool {
	return slices.ContainsFunc(kubeconfigExts, func(ext string) bool { return strings.HasSuffix(name, ext) })
}

type namedCert struct {
	name string
	cert *x509.Certificate
}

// CheckFiles reports every certificate in files (relative slash path → content): PEM
// certificates (*.crt, *.pem) and certificates embedded in kubeconfigs (*.conf,
// *.kubeconfig). A *.crt whose *.key is among files is checked against it. Each row gets
// host as Host. Callers that fetched a node's /etc/kubernetes (pki/ and *.conf) use it
// directly; CheckDir uses it for the local pki dir. Rows are sorted by Name.
func CheckFiles(host string, files map[string][]byte, now time.Time) []Expiry {
	var rows []Expiry
	var certs []namedCert // every parsed certificate, in row order
	var cas []namedCert   // CA candidates: PEM files first, then kubeconfig clusters
	var embeddedCAs []namedCert
	rowErr := map[string]string{}

	for _, name := range sortedKeys(files) {
		data := files[name]
		switch {
		case isCertFile(name):
			parsed, err := ParseCertsPEM(data)
			if err != nil {
				rows = append(rows, Expiry{Host: host, Name: name, Err: "unreadable: " + err.Error()})
				continue
			}
			for i, c := range parsed {
				n := name
				if i > 0 {
					n = fmt.Sprintf("%s[%d]", name, i+1)
				}
				certs = append(certs, namedCert{n, c})
				if c.IsCA {
					cas = append(cas, namedCert{n, c})
				}
			}
			if strings.HasSuffix(name, ".crt") {
				if msg := keyProblem(files, name, parsed[0]); msg != "" {
					rowErr[name] = msg
				}
			}
		case isKubeconfig(name):
			kcs, err := kubeconfigCerts(name, data)
			if err != nil {
				rows = append(rows, Expiry{Host: host, Name: name, Err: "unreadable: " + err.Error()})
				continue
			}
			for _, kc := range kcs {
				certs = append(certs, namedCert{kc.path, kc.cert})
				if kc.cert.IsCA {
					embeddedCAs = append(embeddedCAs, namedCert{kc.path, kc.cert})
				}
			}
		}
	}
	cas = append(cas, embeddedCAs...)

	for _, nc := range certs {
		c := nc.cert
		row := Expiry{Host: host, Name: nc.name, IsCA: c.IsCA, NotAfter: c.NotAfter, Left: c.NotAfter.Sub(now), Err: rowErr[nc.name]}
		ca, problem := issuerOf(c, cas)
		row.CA = ca
		if problem != "" && row.Err == "" {
			row.Err = problem
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b Expiry) int { return strings.Compare(a.Name, b.Name) })
	return rows
}

// issuerOf names the CA among cas that signed c.
func issuerOf(c *x509.Certificate, cas []namedCert) (name, problem string) {
	if string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil {
		return "", ""
	}
	var stale string
	for _, ca := range cas {
		if string(ca.cert.RawSubject) != string(c.RawIssuer) {
			continue
		}
		if c.CheckSignatureFrom(ca.cert) == nil {
			return ca.name, ""
		}
		if stale == "" {
			stale = ca.name
		}
	}
	if stale != "" {
		return stale, "not signed by the current " + stale + " — re-issue it"
	}
	return c.Issuer.String(), ""
}

// keyProblem checks name's sibling .key if files holds it.
func keyProblem(files map[string][]byte, name string, c *x509.Certificate) string {
	kn := strings.TrimSuffix(name, ".crt") + ".key"
	kb, ok := files[kn]
	if !ok {
		return ""
	}
	k, err := parseKey(kb)
	if err != nil {
		return kn + " unreadable: " + err.Error()
	}
	if !samePublicKey(k.Public(), c.PublicKey) {
		return kn + " does not match the certificate"
	}
	return ""
}

// expectedPairs lists the cert/key pairs a pki dir made by Ensure holds, given the etcd
// member directories found.
func expectedPairs(members []string) []string {
	pairs := []string{KubernetesCA, FrontProxyCA, EtcdCA, EtcdHealthcheck, APIServerEtcd}
	for _, m := range members {
		pairs = append(pairs, EtcdServer(m), EtcdPeer(m))
	}
	return pairs
}

// CheckDir reports every certificate below dir (see CheckFiles) and adds a row with Err for
// each file Ensure would have made that is missing or unreadable: the CAs, the etcd client
// certs, sa.key/sa.pub and server/peer certs of every member directory under etcd/. Keys and
// sa.* get rows only when something is wrong with them. Host is left empty.
func CheckDir(dir string, now time.Time) ([]Expiry, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: %w — run the pki phase first", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("certs: %s is not a directory", dir)
	}
	files := map[string][]byte{}
	var rows []Expiry
	var members []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if err != nil {
			rows = append(rows, Expiry{Name: rel, Err: "unreadable: " + err.Error()})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if path.Dir(rel) == "etcd" {
				members = append(members, path.Base(rel))
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") || !d.Type().IsRegular() {
			return nil
		}
		if !isCertFile(rel) && !isKubeconfig(rel) && !strings.HasSuffix(rel, ".key") && !strings.HasSuffix(rel, ".pub") {
			return nil
		}
		b, rerr := os.ReadFile(p)
		if rerr != nil {
			rows = append(rows, Expiry{Name: rel, Err: "unreadable: " + rerr.Error()})
			return nil
		}
		files[rel] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("certs: walk %s: %w", dir, err)
	}
	rows = append(rows, CheckFiles("", files, now)...)

	have := map[string]int{} // row index by name
	for i, r := range rows {
		have[r.Name] = i
	}
	for _, base := range expectedPairs(members) {
		crt, key := crtPath(base), keyPath(base)
		_, keyThere := files[key]
		if _, bad := have[key]; bad {
			keyThere = true // unreadable: has its own row
		}
		i, crtRow := have[crt]
		switch {
		case !crtRow && keyThere:
			rows = append(rows, Expiry{Name: crt, Err: "missing"})
		case !crtRow:
			rows = append(rows, Expiry{Name: crt, Err: "missing, and " + key + " too"})
		case !keyThere:
			rows[i].Err = strings.TrimPrefix(rows[i].Err+"; "+key+" is missing", "; ")
		}
	}
	for _, f := range []string{SAKey, SAPub} {
		_, there := files[f]
		if _, bad := have[f]; !there && !bad {
			rows = append(rows, Expiry{Name: f, Err: "missing"})
		}
	}
	rows = append(rows, saProblems(files)...)
	slices.SortStableFunc(rows, func(a, b Expiry) int { return strings.Compare(a.Name, b.Name) })
	return rows, nil
}

// saProblems reports an unreadable sa.key or an sa.pub that does not match it.
func saProblems(files map[string][]byte) []Expiry {
	kb, okK := files[SAKey]
	pb, okP := files[SAPub]
	if !okK || !okP {
		return nil // missing: reported by CheckDir
	}
	k, err := parseKey(kb)
	if err != nil {
		return []Expiry{{Name: SAKey, Err: "unreadable: " + err.Error()}}
	}
	b, _ := pem.Decode(pb)
	if b == nil {
		return []Expiry{{Name: SAPub, Err: "unreadable: no PEM block"}}
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return []Expiry{{Name: SAPub, Err: "unreadable: " + err.Error()}}
	}
	if !samePublicKey(k.Public(), pub) {
		return []Expiry{{Name: SAPub, Err: "does not match sa.key — rerun the pki phase"}}
	}
	return nil
}
