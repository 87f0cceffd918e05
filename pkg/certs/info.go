package certs

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// CertInfo is what people ask about a certificate.
type CertInfo struct {
	Path, Subject, Issuer string
	IsCA                  bool
	NotBefore, NotAfter   time.Time
	SANs                  []string
	Serial                string // lowercase hex
}

// ParseCertsPEM returns every CERTIFICATE block of data in order, skipping other blocks (a
// kubelet-client-current.pem holds the key too). It fails when there is none or one is bad.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func infoOf(path string, c *x509.Certificate) CertInfo {
	return CertInfo{
		Path:      path,
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		IsCA:      c.IsCA,
		NotBefore: c.NotBefore,
		NotAfter:  c.NotAfter,
		SANs:      certHosts(c),
		Serial:    c.SerialNumber.Text(16),
	}
}

// InfoFromPEM describes every certificate in a PEM file; path is only copied into the result.
func InfoFromPEM(path string, data []byte) ([]CertInfo, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", path, err)
	}
	out := make([]CertInfo, 0, len(certs))
	for _, c := range certs {
		out = append(out, infoOf(path, c))
	}
	return out, nil
}

// kubeconfigCert is one certificate embedded in a kubeconfig.
type kubeconfigCert struct {
	path string // "<file>#user/<name>" or "<file>#cluster/<name>"
	cert *x509.Certificate
}

func kubeconfigCerts(path string, data []byte) ([]kubeconfigCert, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: not a kubeconfig: %w", path, err)
	}
	var out []kubeconfigCert
	add := func(where string, pemData []byte) error {
		if len(pemData) == 0 {
			return nil // a file reference (e.g. kubelet.conf) or token auth: nothing embedded
		}
		certs, err := ParseCertsPEM(pemData)
		if err != nil {
			return fmt.Errorf("certs: %s %s: %w", path, where, err)
		}
		for _, c := range certs {
			out = append(out, kubeconfigCert{path + "#" + where, c})
		}
		return nil
	}
	for _, name := range sortedKeys(cfg.AuthInfos) {
		if err := add("user/"+name, cfg.AuthInfos[name].ClientCertificateData); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(cfg.Clusters) {
		if err := add("cluster/"+name, cfg.Clusters[name].CertificateAuthorityData); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// InfoFromKubeconfig describes the certificates embedded in a kubeconfig
// (users' client-certificate-data, then clusters' certificate-authority-data, each sorted by
// name). Path is "<path>#user/<name>" or "<path>#cluster/<name>". Certificates referenced by
// file name are not read.
func InfoFromKubeconfig(path string, data []byte) ([]CertInfo, error) {
	kcs, err := kubeconfigCerts(path, data)
	if err != nil {
		return nil, err
	}
	out := make([]CertInfo, 0, len(kcs))
	for _, kc := range kcs {
		out = append(out, infoOf(kc.path, kc.cert))
	}
	return out, nil
}
