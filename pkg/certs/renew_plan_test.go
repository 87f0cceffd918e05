package certs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestResignPEMKeepsKeyAndSubject(t *testing.T) {
	dir := fixture(t)
	if _, err := IssueClient(dir, KubernetesCA, "node", "system:node:m1", []string{"system:nodes"}, 48*time.Hour, testNow); err != nil {
		t.Fatal(err)
	}
	oldPEM, _ := os.ReadFile(filepath.Join(dir, "node.crt"))
	old, _ := parseCert(oldPEM)
	later := testNow.Add(10 * time.Hour)
	for _, tc := range []struct {
		validity, want time.Duration
	}{{2 * time.Hour, 2 * time.Hour}, {0, 48 * time.Hour}} {
		newPEM, err := ResignPEM(dir, KubernetesCA, oldPEM, tc.validity, later)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseCert(newPEM)
		if err != nil {
			t.Fatal(err)
		}
		ca, _, _ := Load(dir, KubernetesCA)
		switch {
		case !samePublicKey(c.PublicKey, old.PublicKey):
			t.Error("public key changed")
		case c.Subject.String() != old.Subject.String():
			t.Errorf("subject %s, want %s", c.Subject, old.Subject)
		case c.CheckSignatureFrom(ca) != nil:
			t.Error("not signed by the CA")
		case !c.NotAfter.Equal(minTime(later.Add(tc.want), ca.NotAfter)):
			t.Errorf("validity %s: NotAfter %s, want %s (never past the CA's)", tc.validity, c.NotAfter, minTime(later.Add(tc.want), ca.NotAfter))
		case c.SerialNumber.Cmp(old.SerialNumber) == 0:
			t.Error("serial reused")
		case len(c.ExtKeyUsage) != len(old.ExtKeyUsage) || c.ExtKeyUsage[0] != old.ExtKeyUsage[0]:
			t.Errorf("usages %v, want %v", c.ExtKeyUsage, old.ExtKeyUsage)
		}
	}
	// Signed by another CA: refused.
	if _, err := ResignPEM(dir, FrontProxyCA, oldPEM, time.Hour, later); err == nil || !strings.Contains(err.Error(), "was not signed by") {
		t.Errorf("foreign CA: %v", err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if _, err := ResignPEM(dir, KubernetesCA, caPEM, time.Hour, later); err == nil {
		t.Error("re-signed a CA")
	}
}

func TestNeedsRenewal(t *testing.T) {
	rows := []Expiry{
		{Host: "m1", Name: "ca.crt", IsCA: true, Left: time.Hour},
		{Host: "m1", Name: "missing.crt", Err: "missing"},
		{Host: "m1", Name: "apiserver.crt", Left: 40 * 24 * time.Hour},
		{Host: "m2", Name: "peer.crt", Left: 2 * time.Hour},
	}
	need, which := NeedsRenewal(rows, 3*time.Hour)
	if !need || len(which) != 1 || which[0] != "m2: peer.crt" {
		t.Errorf("%v %v", need, which)
	}
	if need, _ := NeedsRenewal(rows, time.Hour); need {
		t.Error("nothing leaf within 1h")
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
