package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNow is the clock the fixture is made with; tests compute every expectation from it.
// It is the real time (so RenewCA, which reads the clock itself, fits in) to the second.
var testNow = time.Now().UTC().Truncate(time.Second)

func testSpec() Spec {
	return Spec{
		ClusterName: "lab",
		Validity:    2 * time.Hour,
		CAValidity:  48 * time.Hour,
		EtcdMembers: []Member{
			{Name: "m1", IPs: []string{"10.77.0.11"}, DNS: []string{"m1.lab.example"}},
			{Name: "m2", IPs: []string{"10.77.0.12", "fd00::12"}},
			{Name: "m3", IPs: []string{"10.77.0.13"}},
		},
	}
}

var (
	fixtureOnce    sync.Once
	fixtureDir     string
	fixtureCreated []string
	fixtureErr     error
)

// fixture returns a private copy of a pki dir made once by Ensure(testSpec(), testNow).
func fixture(t *testing.T) string {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "k4t-certs-fixture-")
		if fixtureErr == nil {
			fixtureDir = filepath.Join(fixtureDir, "pki")
			fixtureCreated, fixtureErr = Ensure(fixtureDir, testSpec(), testNow)
		}
	})
	if fixtureErr != nil {
		t.Fatalf("fixture: %v", fixtureErr)
	}
	dst := filepath.Join(t.TempDir(), "pki")
	copyTree(t, fixtureDir, dst)
	return dst
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(filepath.Dir(fixtureDir))
	}
	os.Exit(code)
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			return os.Chmod(target, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

type fileState struct {
	mode fs.FileMode
	data []byte
}

func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := fileState{mode: info.Mode()}
		if !d.IsDir() {
			if st.data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[filepath.ToSlash(rel)] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustLoad(t *testing.T, dir, rel string) *x509.Certificate {
	t.Helper()
	c, _, err := Load(dir, rel)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func allFiles(members ...string) []string {
	var out []string
	for _, base := range expectedPairs(members) {
		out = append(out, crtPath(base), keyPath(base))
	}
	return append(out, SAKey, SAPub)
}

func TestEnsureCreatesEverythingThenNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	created, err := Ensure(dir, testSpec(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := allFiles("m1", "m2", "m3")
	if got, w := slices.Sorted(slices.Values(created)), slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
		t.Fatalf("created:\n got %v\nwant %v", got, w)
	}
	before := snapshot(t, dir)
	for _, now := range []time.Time{testNow, testNow.Add(time.Hour)} {
		again, err := Ensure(dir, testSpec(), now)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != 0 {
			t.Fatalf("second Ensure at %s created %v", now, again)
		}
	}
	after := snapshot(t, dir)
	if len(before) != len(after) {
		t.Fatalf("file set changed: %d -> %d entries", len(before), len(after))
	}
	for name, b := range before {
		a := after[name]
		if a.mode != b.mode || !bytes.Equal(a.data, b.data) {
			t.Errorf("%s changed on the second Ensure", name)
		}
	}
}

func TestFileModesAndKeyTypes(t *testing.T) {
	dir := fixture(t)
	for _, d := range []string{".", "etcd", "etcd/m1", "etcd/m2", "etcd/m3"} {
		st, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("dir %s mode %v, want 0700", d, st.Mode().Perm())
		}
	}
	for _, f := range allFiles("m1", "m2", "m3") {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		want := fs.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			want = 0o600
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", f, st.Mode().Perm(), want)
		}
	}
	for _, ca := range []string{KubernetesCA, FrontProxyCA, EtcdCA} {
		c, k, err := Load(dir, ca)
		if err != nil {
			t.Fatal(err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok || rk.N.BitLen() != 2048 {
			t.Errorf("%s: key %T, want RSA 2048", ca, k)
		}
		if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("%s: not a proper CA (IsCA %v, usage %v)", ca, c.IsCA, c.KeyUsage)
		}
		if c.Subject.String() != "CN="+map[string]string{KubernetesCA: "kubernetes", FrontProxyCA: "front-proxy-ca", EtcdCA: "etcd-ca"}[ca] {
			t.Errorf("%s: subject %q", ca, c.Subject)
		}
		if !bytes.HasPrefix(readT(t, dir, keyPath(ca)), []byte("-----BEGIN RSA PRIVATE KEY-----")) {
			t.Errorf("%s.key is not PKCS#1 PEM", ca)
		}
	}
	for _, leaf := range []string{EtcdServer("m1"), EtcdPeer("m2"), EtcdHealthcheck, APIServerEtcd} {
		_, k, err := Load(dir, leaf)
		if err != nil {
			t.Fatal(err)
		}
		if ek, ok := k.(*ecdsa.PrivateKey); !ok || ek.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", leaf, k)
		}
	}
	b, _ := pem.Decode(readT(t, dir, SAKey))
	if b == nil || b.Type != "RSA PRIVATE KEY" {
		t.Fatalf("sa.key is not an RSA PRIVATE KEY PEM")
	}
	saKey, err := x509.ParsePKCS1PrivateKey(b.Bytes)
	if err != nil || saKey.N.BitLen() != 2048 {
		t.Fatalf("sa.key: %v", err)
	}
	p, _ := pem.Decode(readT(t, dir, SAPub))
	if p == nil || p.Type != "PUBLIC KEY" {
		t.Fatalf("sa.pub is not a PUBLIC KEY PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(p.Bytes)
	if err != nil || !saKey.PublicKey.Equal(pub) {
		t.Fatalf("sa.pub does not match sa.key: %v", err)
	}
}

func readT(t *testing.T, dir, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sans(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.DNSNames...)
	slices.Sort(out)
	return out
}

func TestEtcdCertSANsAndUsages(t *testing.T) {
	dir := fixture(t)
	cases := []struct {
		rel       string
		cn        string
		sans      []string
		ekus      []x509.ExtKeyUsage
		clientOrg []string
	}{
		{EtcdServer("m1"), "m1", []string{"10.77.0.11", "127.0.0.1", "::1", "localhost", "m1", "m1.lab.example"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil},
		{EtcdPeer("m1"), "m1", []string{"10.77.0.11", "m1", "m1.lab.example"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil},
		{EtcdServer("m2"), "m2", []string{"10.77.0.12", "127.0.0.1", "::1", "fd00::12", "localhost", "m2"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil},
		{EtcdPeer("m2"), "m2", []string{"10.77.0.12", "fd00::12", "m2"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil},
		{EtcdHealthcheck, "kube-etcd-healthcheck-client", nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil},
		{APIServerEtcd, "kube-apiserver-etcd-client", nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil},
	}
	for _, tc := range cases {
		c := mustLoad(t, dir, tc.rel)
		want := slices.Clone(tc.sans)
		slices.Sort(want)
		if got := sans(c); !slices.Equal(got, want) {
			t.Errorf("%s SANs: got %v want %v", tc.rel, got, want)
		}
		if c.Subject.CommonName != tc.cn || len(c.Subject.Organization) != 0 {
			t.Errorf("%s subject %q, want CN=%s and no O", tc.rel, c.Subject, tc.cn)
		}
		if !slices.Equal(c.ExtKeyUsage, tc.ekus) {
			t.Errorf("%s ext key usages %v want %v", tc.rel, c.ExtKeyUsage, tc.ekus)
		}
		if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			t.Errorf("%s lacks digitalSignature", tc.rel)
		}
		if c.IsCA {
			t.Errorf("%s is a CA", tc.rel)
		}
	}
}

func pool(t *testing.T, dir, ca string) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(mustLoad(t, dir, ca))
	return p
}

func TestChainVerification(t *testing.T) {
	dir := fixture(t)
	etcd := pool(t, dir, EtcdCA)
	kube := pool(t, dir, KubernetesCA)
	server := x509.VerifyOptions{Roots: etcd, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	client := x509.VerifyOptions{Roots: etcd, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, m := range []string{"m1", "m2", "m3"} {
		for _, rel := range []string{EtcdServer(m), EtcdPeer(m)} {
			c := mustLoad(t, dir, rel)
			for _, opts := range []x509.VerifyOptions{server, client} {
				if _, err := c.Verify(opts); err != nil {
					t.Errorf("%s: %v", rel, err)
				}
			}
			if err := c.VerifyHostname(m); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		}
		srv := mustLoad(t, dir, EtcdServer(m))
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			if err := srv.VerifyHostname(h); err != nil {
				t.Errorf("%s: %v", EtcdServer(m), err)
			}
		}
		if err := mustLoad(t, dir, EtcdPeer(m)).VerifyHostname("localhost"); err == nil {
			t.Errorf("peer cert of %s should not name localhost", m)
		}
	}
	for _, rel := range []string{EtcdHealthcheck, APIServerEtcd} {
		c := mustLoad(t, dir, rel)
		if _, err := c.Verify(client); err != nil {
			t.Errorf("%s as client: %v", rel, err)
		}
		if _, err := c.Verify(server); err == nil {
			t.Errorf("%s verified as a server certificate; it must be client-only", rel)
		}
	}
	wrongCA := server
	wrongCA.Roots = kube
	if _, err := mustLoad(t, dir, EtcdServer("m1")).Verify(wrongCA); err == nil {
		t.Error("etcd server cert verified against the Kubernetes CA")
	}
	late := server
	late.CurrentTime = testNow.Add(2*time.Hour + time.Second)
	if _, err := mustLoad(t, dir, EtcdServer("m1")).Verify(late); err == nil {
		t.Error("2h leaf still verifies after 2h")
	}
}

func TestValidityHonoured(t *testing.T) {
	dir := fixture(t)
	for _, rel := range []string{EtcdServer("m1"), EtcdPeer("m3"), EtcdHealthcheck, APIServerEtcd} {
		c := mustLoad(t, dir, rel)
		if !c.NotAfter.Equal(testNow.Add(2*time.Hour)) || !c.NotBefore.Equal(testNow.Add(-backdate)) {
			t.Errorf("%s: %s .. %s, want %s .. %s", rel, c.NotBefore, c.NotAfter, testNow.Add(-backdate), testNow.Add(2*time.Hour))
		}
	}
	for _, rel := range []string{KubernetesCA, FrontProxyCA, EtcdCA} {
		c := mustLoad(t, dir, rel)
		if !c.NotAfter.Equal(testNow.Add(48*time.Hour)) || !c.NotBefore.Equal(testNow.Add(-backdate)) {
			t.Errorf("%s: %s .. %s, want 48h from %s", rel, c.NotBefore, c.NotAfter, testNow)
		}
	}
}

func TestDefaultValidity(t *testing.T) {
	dir := fixture(t)
	// A CA certificate re-made from its kept key and a re-issued leaf get the defaults.
	for _, f := range []string{"ca.crt", "etcd/m1/server.crt"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	spec := testSpec()
	spec.Validity, spec.CAValidity = 0, 0
	created, err := Ensure(dir, spec, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created, []string{"ca.crt", "etcd/m1/server.crt"}) {
		t.Errorf("created %v", created)
	}
	if got := mustLoad(t, dir, EtcdServer("m1")).NotAfter; !got.Equal(testNow.Add(DefaultValidity)) {
		t.Errorf("leaf NotAfter %s", got)
	}
	if got := mustLoad(t, dir, KubernetesCA).NotAfter; !got.Equal(testNow.Add(DefaultCAValidity)) {
		t.Errorf("CA NotAfter %s", got)
	}
}

func TestChangedSANsReissueKeepingKey(t *testing.T) {
	dir := fixture(t)
	oldServer := mustLoad(t, dir, EtcdServer("m1"))
	oldKey := readT(t, dir, keyPath(EtcdServer("m1")))
	m3 := readT(t, dir, crtPath(EtcdServer("m3")))

	spec := testSpec()
	spec.EtcdMembers[0].IPs = []string{"10.77.0.21"}
	spec.EtcdMembers[0].DNS = nil
	spec.EtcdMembers = append(spec.EtcdMembers, Member{Name: "m4", IPs: []string{"10.77.0.14"}})
	created, err := Ensure(dir, spec, testNow.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{crtPath(EtcdServer("m1")), crtPath(EtcdPeer("m1")),
		keyPath(EtcdServer("m4")), crtPath(EtcdServer("m4")), keyPath(EtcdPeer("m4")), crtPath(EtcdPeer("m4"))}
	if !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	newServer := mustLoad(t, dir, EtcdServer("m1"))
	if !bytes.Equal(readT(t, dir, keyPath(EtcdServer("m1"))), oldKey) || !samePublicKey(newServer.PublicKey, oldServer.PublicKey) {
		t.Error("m1 server key changed; it must be kept")
	}
	if got := sans(newServer); !slices.Equal(got, []string{"10.77.0.21", "127.0.0.1", "::1", "localhost", "m1"}) {
		t.Errorf("m1 server SANs %v", got)
	}
	if !bytes.Equal(readT(t, dir, crtPath(EtcdServer("m3"))), m3) {
		t.Error("m3 server cert rewritten although unchanged")
	}
}

func TestExpiredLeavesReissuedCAsRenewed(t *testing.T) {
	dir := fixture(t)
	oldLeaf := mustLoad(t, dir, EtcdServer("m1"))
	// 3h later the 2h leaves are expired, the 48h CAs are not.
	later := testNow.Add(3 * time.Hour)
	created, err := Ensure(dir, testSpec(), later)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range created {
		if strings.HasSuffix(f, ".key") || f == crtPath(KubernetesCA) || f == crtPath(EtcdCA) {
			t.Errorf("Ensure wrote %s; only leaf certificates were expired", f)
		}
	}
	if len(created) != 8 { // 3 members × 2 + 2 clients
		t.Errorf("created %v", created)
	}
	leaf := mustLoad(t, dir, EtcdServer("m1"))
	if !samePublicKey(leaf.PublicKey, oldLeaf.PublicKey) || !leaf.NotAfter.Equal(later.Add(2*time.Hour)) {
		t.Errorf("re-issued leaf: key kept %v, NotAfter %s", samePublicKey(leaf.PublicKey, oldLeaf.PublicKey), leaf.NotAfter)
	}

	// 3 days later the CAs are expired too: renewed with the same key.
	oldCA := mustLoad(t, dir, EtcdCA)
	much := testNow.Add(72 * time.Hour)
	created, err = Ensure(dir, testSpec(), much)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(created, crtPath(EtcdCA)) || slices.Contains(created, keyPath(EtcdCA)) {
		t.Errorf("created %v; want etcd/ca.crt renewed without a new key", created)
	}
	ca := mustLoad(t, dir, EtcdCA)
	if !samePublicKey(ca.PublicKey, oldCA.PublicKey) || !bytes.Equal(ca.RawSubject, oldCA.RawSubject) || !ca.NotAfter.Equal(much.Add(48*time.Hour)) {
		t.Errorf("renewed CA: %s until %s", ca.Subject, ca.NotAfter)
	}
	if _, err := mustLoad(t, dir, EtcdPeer("m2")).Verify(x509.VerifyOptions{Roots: pool(t, dir, EtcdCA), CurrentTime: much, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Error(err)
	}
}

func TestCAKeyMissingIsRefused(t *testing.T) {
	dir := fixture(t)
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(dir, testSpec(), testNow)
	if err == nil || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("want an error saying to restore ca.key, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.key")); err == nil {
		t.Fatal("Ensure created a new ca.key next to the old ca.crt")
	}
}

func TestNewEtcdCAReissuesItsLeaves(t *testing.T) {
	dir := fixture(t)
	kubeCA := readT(t, dir, "ca.crt")
	for _, f := range []string{"etcd/ca.crt", "etcd/ca.key"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	created, err := Ensure(dir, testSpec(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 10 { // CA pair + 8 leaf certs (keys kept)
		t.Errorf("created %v", created)
	}
	if !bytes.Equal(readT(t, dir, "ca.crt"), kubeCA) {
		t.Error("Kubernetes CA rewritten")
	}
	if _, err := mustLoad(t, dir, APIServerEtcd).Verify(x509.VerifyOptions{Roots: pool(t, dir, EtcdCA), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
}

func TestCACertLostKeyKept(t *testing.T) {
	dir := fixture(t)
	oldLeaf := mustLoad(t, dir, EtcdServer("m1"))
	if err := os.Remove(filepath.Join(dir, "etcd/ca.crt")); err != nil {
		t.Fatal(err)
	}
	created, err := Ensure(dir, testSpec(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created, []string{"etcd/ca.crt"}) {
		t.Errorf("created %v; the CA cert made from the kept key must still sign every leaf", created)
	}
	if _, err := oldLeaf.Verify(x509.VerifyOptions{Roots: pool(t, dir, EtcdCA), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Error(err)
	}
}

func TestSpecValidation(t *testing.T) {
	bad := Spec{ClusterName: "x", EtcdMembers: []Member{
		{Name: "../evil", IPs: []string{"10.0.0.1"}},
		{Name: "ok", IPs: []string{"nope"}},
		{Name: "ok", IPs: []string{"10.0.0.2"}, DNS: []string{"10.0.0.3"}},
		{Name: "noip"},
	}}
	_, err := Ensure(t.TempDir(), bad, testNow)
	if err == nil {
		t.Fatal("want a validation error")
	}
	for _, want := range []string{`etcdMembers[0].name "../evil"`, `etcdMembers[1].ips[0] "nope"`, `etcdMembers[2].name "ok": used twice`, `etcdMembers[2].dns[0]`, `etcdMembers[3].ips`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestRenewLeafKeepsKeyAndExtends(t *testing.T) {
	dir := fixture(t)
	for _, rel := range []string{"etcd/m2/server.crt", "apiserver-etcd-client"} {
		old := mustLoad(t, dir, rel)
		keyBefore := readT(t, dir, keyPath(baseName(rel)))
		now := testNow.Add(90 * time.Minute)
		if err := RenewLeaf(dir, rel, 24*time.Hour, now); err != nil {
			t.Fatal(err)
		}
		c := mustLoad(t, dir, rel)
		if !samePublicKey(c.PublicKey, old.PublicKey) || !bytes.Equal(readT(t, dir, keyPath(baseName(rel))), keyBefore) {
			t.Errorf("%s: key changed", rel)
		}
		if !c.NotAfter.Equal(now.Add(24*time.Hour)) || !c.NotAfter.After(old.NotAfter) {
			t.Errorf("%s: NotAfter %s (was %s)", rel, c.NotAfter, old.NotAfter)
		}
		if !slices.Equal(sans(c), sans(old)) || !slices.Equal(c.ExtKeyUsage, old.ExtKeyUsage) || c.KeyUsage != old.KeyUsage || !bytes.Equal(c.RawSubject, old.RawSubject) {
			t.Errorf("%s: SANs/usages/subject changed: %v %v %v %q", rel, sans(c), c.ExtKeyUsage, c.KeyUsage, c.Subject)
		}
		if c.SerialNumber.Cmp(old.SerialNumber) == 0 {
			t.Errorf("%s: same serial after renewal", rel)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(t, dir, EtcdCA), CurrentTime: now.Add(20 * time.Hour), KeyUsages: old.ExtKeyUsage}); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
	}
	// Ensure accepts the renewed leaf as is.
	created, err := Ensure(dir, testSpec(), testNow.Add(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(created, "etcd/m2/server.crt") {
		t.Errorf("Ensure re-issued a freshly renewed leaf: %v", created)
	}
	if err := RenewLeaf(dir, "etcd/ca.crt", time.Hour, testNow); err == nil {
		t.Error("RenewLeaf accepted a CA")
	}
}

func TestRenewCAKeepsKeyAndOldLeavesVerify(t *testing.T) {
	dir := fixture(t)
	old := mustLoad(t, dir, EtcdCA)
	leaf := mustLoad(t, dir, EtcdServer("m1"))
	if err := RenewCA(dir, "etcd/ca.crt", 20*365*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	ca := mustLoad(t, dir, EtcdCA)
	if !samePublicKey(ca.PublicKey, old.PublicKey) || !bytes.Equal(ca.RawSubject, old.RawSubject) || !bytes.Equal(ca.SubjectKeyId, old.SubjectKeyId) {
		t.Fatal("renewed CA changed key, subject or subject key id")
	}
	if !ca.NotAfter.After(time.Now().Add(19*365*24*time.Hour)) || !ca.IsCA {
		t.Errorf("renewed CA NotAfter %s IsCA %v", ca.NotAfter, ca.IsCA)
	}
	if ca.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Error("same serial after renewal")
	}
	onlyNew := x509.NewCertPool()
	onlyNew.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: onlyNew, CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("old leaf does not verify against the renewed CA: %v", err)
	}
	// Keep-length renewal.
	if err := RenewCA(dir, "ca", 0); err != nil {
		t.Fatal(err)
	}
	k := mustLoad(t, dir, KubernetesCA)
	if got := k.NotAfter.Sub(k.NotBefore); got != 48*time.Hour+backdate {
		t.Errorf("keep-length renewal: %s", got)
	}
	// Nothing to re-issue afterwards: every leaf still fits.
	created, err := Ensure(dir, testSpec(), testNow)
	if err != nil || len(created) != 0 {
		t.Errorf("Ensure after RenewCA: %v %v", created, err)
	}
	if err := RenewCA(dir, APIServerEtcd, time.Hour); err == nil {
		t.Error("RenewCA accepted a leaf")
	}
}

func TestLoadRejectsMismatchedPair(t *testing.T) {
	dir := fixture(t)
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), readT(t, dir, "front-proxy-ca.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(dir, "ca.crt"); err == nil || !strings.Contains(err.Error(), "do not belong together") {
		t.Fatalf("got %v", err)
	}
	if _, err := Ensure(dir, testSpec(), testNow); err == nil {
		t.Fatal("Ensure accepted a CA with the wrong key")
	}
	if _, _, err := Load(dir, "../x"); err == nil {
		t.Fatal("Load accepted a path outside the dir")
	}
}

func TestIssueClient(t *testing.T) {
	dir := fixture(t)
	created, err := IssueClient(dir, "ca", "admin", "kubernetes-admin", []string{"kubeadm:cluster-admins"}, 24*time.Hour, testNow)
	if err != nil || !created {
		t.Fatalf("IssueClient: %v %v", created, err)
	}
	c := mustLoad(t, dir, "admin.crt")
	if c.Subject.CommonName != "kubernetes-admin" || !slices.Equal(c.Subject.Organization, []string{"kubeadm:cluster-admins"}) {
		t.Errorf("subject %q", c.Subject)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(t, dir, KubernetesCA), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	before := readT(t, dir, "admin.crt")
	created, err = IssueClient(dir, "ca", "admin.crt", "kubernetes-admin", []string{"kubeadm:cluster-admins"}, 24*time.Hour, testNow.Add(time.Hour))
	if err != nil || created || !bytes.Equal(before, readT(t, dir, "admin.crt")) {
		t.Errorf("second IssueClient: created %v err %v", created, err)
	}
	created, err = IssueClient(dir, "ca", "admin", "kubernetes-admin", []string{"system:masters"}, 24*time.Hour, testNow)
	if err != nil || !created {
		t.Errorf("changed orgs: created %v err %v", created, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "admin.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("admin.key mode %v", st.Mode().Perm())
	}
}

func TestParseCertsPEM(t *testing.T) {
	dir := fixture(t)
	bundle := slices.Concat(readT(t, dir, "etcd/m1/server.key"), readT(t, dir, "etcd/m1/server.crt"), readT(t, dir, "etcd/ca.crt"))
	certs, err := ParseCertsPEM(bundle)
	if err != nil || len(certs) != 2 || certs[0].Subject.CommonName != "m1" || certs[1].Subject.CommonName != "etcd-ca" {
		t.Fatalf("got %d certs, %v", len(certs), err)
	}
	if _, err := ParseCertsPEM(readT(t, dir, "sa.key")); err == nil {
		t.Error("a key alone parsed as certificates")
	}
	if _, err := ParseCertsPEM([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil {
		t.Error("garbage parsed")
	}
	infos, err := InfoFromPEM("etcd/m2/server.crt", readT(t, dir, "etcd/m2/server.crt"))
	if err != nil || len(infos) != 1 {
		t.Fatal(err)
	}
	i := infos[0]
	if i.Path != "etcd/m2/server.crt" || i.Subject != "CN=m2" || i.Issuer != "CN=etcd-ca" || i.IsCA || !i.NotAfter.Equal(testNow.Add(2*time.Hour)) || i.Serial == "" {
		t.Errorf("info %+v", i)
	}
	if !slices.Contains(i.SANs, "fd00::12") || !slices.Contains(i.SANs, "localhost") {
		t.Errorf("SANs %v", i.SANs)
	}
	if net.ParseIP(i.SANs[0]) == nil {
		t.Errorf("IPs should come first: %v", i.SANs)
	}
}

// TestMutualTLS does what etcd with --client-cert-auth and kube-apiserver do: a TLS 1.3
// handshake over an in-memory pipe, each side checking the other against the etcd CA.
func TestMutualTLS(t *testing.T) {
	dir := fixture(t)
	pair := func(base string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, crtPath(base)), filepath.Join(dir, keyPath(base)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roots := pool(t, dir, EtcdCA)
	clock := func() time.Time { return testNow }
	for _, tc := range []struct {
		client, serverName string
		ok                 bool
	}{
		{APIServerEtcd, "10.77.0.11", true},
		{EtcdHealthcheck, "localhost", true},
		{EtcdPeer("m2"), "m1", true}, // a peer dialling m1's client port
		{APIServerEtcd, "10.77.0.99", false},
	} {
		srvConn, cliConn := net.Pipe()
		srv := tls.Server(srvConn, &tls.Config{Certificates: []tls.Certificate{pair(EtcdServer("m1"))}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert, Time: clock})
		cli := tls.Client(cliConn, &tls.Config{Certificates: []tls.Certificate{pair(tc.client)}, RootCAs: roots, ServerName: tc.serverName, Time: clock})
		done := make(chan error, 1)
		go func() { done <- srv.Handshake(); srvConn.Close() }()
		cerr := cli.Handshake()
		cliConn.Close() // not cli.Close: its close_notify would wait 5s on the unbuffered pipe
		serr := <-done
		if tc.ok && (cerr != nil || serr != nil) {
			t.Errorf("%s -> %s: client %v, server %v", tc.client, tc.serverName, cerr, serr)
		}
		if !tc.ok && cerr == nil {
			t.Errorf("%s -> %s: handshake succeeded, want a name mismatch", tc.client, tc.serverName)
		}
	}
}
