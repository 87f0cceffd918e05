package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/testenv"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func rowsByName(rows []Expiry) map[string]Expiry {
	out := map[string]Expiry{}
	for _, r := range rows {
		out[r.Name] = r
	}
	return out
}

func TestCheckDirListsEverything(t *testing.T) {
	dir := fixture(t)
	now := testNow.Add(time.Hour)
	rows, err := CheckDir(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
		if r.Err != "" {
			t.Errorf("%s: unexpected error %q", r.Name, r.Err)
		}
		if r.Left != r.NotAfter.Sub(now) {
			t.Errorf("%s: Left %s", r.Name, r.Left)
		}
	}
	want := []string{"apiserver-etcd-client.crt", "ca.crt", "etcd/ca.crt", "etcd/healthcheck-client.crt",
		"etcd/m1/peer.crt", "etcd/m1/server.crt", "etcd/m2/peer.crt", "etcd/m2/server.crt",
		"etcd/m3/peer.crt", "etcd/m3/server.crt", "front-proxy-ca.crt"}
	if !slices.Equal(names, want) {
		t.Fatalf("rows:\n got %v\nwant %v", names, want)
	}
	by := rowsByName(rows)
	if r := by["etcd/m1/server.crt"]; r.CA != "etcd/ca.crt" || r.IsCA || r.Left != time.Hour {
		t.Errorf("server row %+v", r)
	}
	if r := by["ca.crt"]; r.CA != "" || !r.IsCA || r.Left != 47*time.Hour {
		t.Errorf("ca row %+v", r)
	}
}

func TestCheckDirFlagsProblems(t *testing.T) {
	dir := fixture(t)
	for _, f := range []string{"etcd/m1/peer.crt", "etcd/m2/server.key", "sa.pub", "etcd/m3/peer.crt", "etcd/m3/peer.key"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "apiserver-etcd-client.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A leaf from another etcd CA with the same subject: stale after a CA was replaced.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherCAPEM, _, err := newCA("etcd-ca", otherKey, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, _ := parseCert(otherCAPEM)
	leafKey, _ := parseKey(readT(t, dir, "etcd/healthcheck-client.key"))
	stale, _, err := signLeaf(otherCA, otherKey, leafRequest{cn: "kube-etcd-healthcheck-client", usages: usageClient}, leafKey, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etcd/healthcheck-client.crt"), stale, 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := CheckDir(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	by := rowsByName(rows)
	wantErr := map[string]string{
		"etcd/m1/peer.crt":            "missing",
		"etcd/m2/server.crt":          "etcd/m2/server.key is missing",
		"sa.pub":                      "missing",
		"etcd/m3/peer.crt":            "missing, and etcd/m3/peer.key too",
		"apiserver-etcd-client.crt":   "unreadable",
		"etcd/healthcheck-client.crt": "not signed by the current etcd/ca.crt",
	}
	for name, want := range wantErr {
		r, ok := by[name]
		if !ok {
			t.Errorf("no row for %s", name)
			continue
		}
		if !strings.Contains(r.Err, want) {
			t.Errorf("%s: Err %q, want it to contain %q", name, r.Err, want)
		}
	}
	if r := by["etcd/m1/server.crt"]; r.Err != "" {
		t.Errorf("healthy row flagged: %+v", r)
	}
	// a key that does not match its certificate
	if err := os.WriteFile(filepath.Join(dir, "etcd/m1/server.key"), readT(t, dir, "etcd/m3/server.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	rows, _ = CheckDir(dir, testNow)
	if r := rowsByName(rows)["etcd/m1/server.crt"]; !strings.Contains(r.Err, "does not match") {
		t.Errorf("mismatched key not flagged: %+v", r)
	}
	if _, err := CheckDir(filepath.Join(dir, "nope"), testNow); err == nil {
		t.Error("CheckDir of a missing dir did not fail")
	}
}

func writeKubeconfig(t *testing.T, dir string) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: "https://10.77.0.10:6443", CertificateAuthorityData: readT(t, dir, "ca.crt")}
	cfg.AuthInfos["kubernetes-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: readT(t, dir, "admin.crt"), ClientKeyData: readT(t, dir, "admin.key")}
	cfg.AuthInfos["kubelet"] = &clientcmdapi.AuthInfo{ClientCertificate: "/var/lib/kubelet/pki/kubelet-client-current.pem"}
	cfg.Contexts["admin@lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: "kubernetes-admin"}
	cfg.CurrentContext = "admin@lab"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKubeconfigEmbeddedCerts(t *testing.T) {
	dir := fixture(t)
	if _, err := IssueClient(dir, "ca", "admin", "kubernetes-admin", []string{"kubeadm:cluster-admins"}, 24*time.Hour, testNow); err != nil {
		t.Fatal(err)
	}
	kc := writeKubeconfig(t, dir)
	infos, err := InfoFromKubeconfig("admin.conf", kc)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("got %d infos: %+v", len(infos), infos)
	}
	u, c := infos[0], infos[1]
	if u.Path != "admin.conf#user/kubernetes-admin" || u.Subject != "CN=kubernetes-admin,O=kubeadm:cluster-admins" || u.Issuer != "CN=kubernetes" || u.IsCA || !u.NotAfter.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("user cert %+v", u)
	}
	if c.Path != "admin.conf#cluster/lab" || !c.IsCA || c.Subject != "CN=kubernetes" {
		t.Errorf("cluster CA %+v", c)
	}
	if _, err := InfoFromKubeconfig("bad.conf", []byte("apiVersion: v1\nkind: Config\nusers:\n- name: x\n  user:\n    client-certificate-data: Zm9v\n")); err == nil {
		t.Error("bad embedded cert accepted")
	}

	// CheckFiles as a caller with a node's /etc/kubernetes would use it.
	files := map[string][]byte{"admin.conf": kc, "pki/ca.crt": readT(t, dir, "ca.crt"), "pki/ca.key": readT(t, dir, "ca.key")}
	rows := CheckFiles("master1", files, testNow)
	by := rowsByName(rows)
	if r := by["admin.conf#user/kubernetes-admin"]; r.CA != "pki/ca.crt" || r.Host != "master1" || r.Err != "" || r.Left != 24*time.Hour {
		t.Errorf("admin row %+v", r)
	}
	if r := by["admin.conf#cluster/lab"]; !r.IsCA || r.CA != "" {
		t.Errorf("embedded CA row %+v", r)
	}
	// Without the CA file the embedded CA names the issuer.
	rows = CheckFiles("master1", map[string][]byte{"admin.conf": kc}, testNow)
	if r := rowsByName(rows)["admin.conf#user/kubernetes-admin"]; r.CA != "admin.conf#cluster/lab" {
		t.Errorf("admin row without pki: %+v", r)
	}
	// A kubeconfig in the pki dir is reported by CheckDir too.
	if err := os.WriteFile(filepath.Join(dir, "admin.conf"), kc, 0o600); err != nil {
		t.Fatal(err)
	}
	rows, err = CheckDir(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	by = rowsByName(rows)
	if r := by["admin.conf#user/kubernetes-admin"]; r.CA != "ca.crt" || r.Err != "" {
		t.Errorf("CheckDir admin.conf row %+v", r)
	}
	if r := by["admin.crt"]; r.CA != "ca.crt" || r.Err != "" {
		t.Errorf("CheckDir admin.crt row %+v", r)
	}
}

// TestOpenSSLAgrees checks the chains with an independent implementation.
func TestOpenSSLAgrees(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Missing(t, "openssl not installed: apt-get install openssl")
	}
	dir := fixture(t)
	at := []string{"-attime", strconv.FormatInt(testNow.Unix(), 10)} // the fixture's clock
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	verify := func(ca, purpose, leaf string) {
		args := append([]string{"verify"}, at...)
		run(append(args, "-CAfile", ca, "-purpose", purpose, "-x509_strict", leaf)...)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		for _, f := range []string{"server", "peer"} {
			verify("etcd/ca.crt", "sslserver", "etcd/"+m+"/"+f+".crt")
			verify("etcd/ca.crt", "sslclient", "etcd/"+m+"/"+f+".crt")
		}
	}
	verify("etcd/ca.crt", "sslclient", "etcd/healthcheck-client.crt")
	verify("etcd/ca.crt", "sslclient", "apiserver-etcd-client.crt")
	for _, ca := range []string{"ca.crt", "front-proxy-ca.crt", "etcd/ca.crt"} {
		verify(ca, "any", ca)
	}
	// Keys are what openssl expects, and match.
	for _, p := range []string{"ca", "etcd/m1/server"} {
		pub1 := run("x509", "-in", p+".crt", "-noout", "-pubkey")
		pub2 := run("pkey", "-in", p+".key", "-pubout")
		if pub1 != pub2 {
			t.Errorf("%s: openssl sees different public keys in .crt and .key", p)
		}
	}
	if sa := run("pkey", "-in", "sa.key", "-pubout"); sa != string(readT(t, dir, "sa.pub")) {
		t.Errorf("openssl derives a different sa.pub:\n%s", sa)
	}
	// An old leaf still verifies against the renewed CA (openssl also matches AKI/SKI).
	if err := RenewCA(dir, "etcd/ca", 0); err != nil {
		t.Fatal(err)
	}
	at = nil // the renewed CA starts at the real clock minus 5 min; the leaf is valid now too
	verify("etcd/ca.crt", "sslserver", "etcd/m1/server.crt")
	if out := run("x509", "-in", "etcd/m1/server.crt", "-noout", "-ext", "subjectAltName"); !strings.Contains(out, "IP Address:10.77.0.11") || !strings.Contains(out, "DNS:localhost") {
		t.Errorf("openssl SANs: %s", out)
	}
}
