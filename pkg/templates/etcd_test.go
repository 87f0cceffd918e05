package templates

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k4t.io/k4t/pkg/testenv"
)

const defaultEtcd = "/var/cache/k4t/artifacts/etcd-v3.6.16/bin/etcd"

// TestEtcdEnvStartsEtcd starts the real etcd (when built) with a rendered
// environment file on loopback: every ETCD_* name must be recognized, TLS
// for clients and peers must come up, and a client certificate must be
// required.
func TestEtcdEnvStartsEtcd(t *testing.T) {
	bin := os.Getenv("K4T_ETCD")
	if bin == "" {
		bin = defaultEtcd
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "etcd not built (%s; set K4T_ETCD): run make lab-artifacts", bin)
	}
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	writeTestPKI(t, pki)
	clientPort, peerPort, metricsPort := freePort(t), freePort(t), freePort(t)
	env, err := EtcdEnv(EtcdInput{
		Name: "solo", Members: []EtcdMember{{Name: "solo", Address: "127.0.0.1"}},
		ClusterState: "new", ClusterToken: "k4t-test", DataDir: filepath.Join(dir, "data"),
		ClientPort: clientPort, PeerPort: peerPort,
		HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(env), EtcdPKIDir, pki)
	text = strings.ReplaceAll(text, EtcdMetricsURL, "http://127.0.0.1:"+strconv.Itoa(metricsPort))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			cmd.Env = append(cmd.Env, line)
		}
	}
	var logs syncBuffer // etcd writes while the test reads
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("etcd output:\n%s", logs.String())
		}
	}()

	health := "http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/health"
	if !waitHealthy(ctx, http.DefaultClient, health) {
		t.Fatalf("etcd did not become healthy at %s", health)
	}
	// Clients: the CA-signed client certificate is accepted, none is refused.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(pki, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "server.crt"), filepath.Join(pki, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	secure := "https://127.0.0.1:" + strconv.Itoa(clientPort) + "/health"
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	if !waitHealthy(ctx, withCert, secure) {
		t.Errorf("etcd refused a client with a CA-signed certificate at %s", secure)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, err := noCert.Get(secure); err == nil {
		resp.Body.Close()
		t.Errorf("etcd served a client without a certificate (status %s)", resp.Status)
	}
	if strings.Contains(logs.String(), "unrecognized environment variable") {
		t.Errorf("etcd does not know some ETCD_* name in the env file")
	}
}

func waitHealthy(ctx context.Context, c *http.Client, url string) bool {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := c.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestPKI writes ca.crt and server/peer pairs for 127.0.0.1 (each good
// for server and client auth) into dir, named like the files under
// EtcdPKIDir.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "k4t-test-etcd-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER)
	for i, name := range []string{"server", "peer"} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
		writePEM(t, filepath.Join(dir, name+".key"), "EC PRIVATE KEY", keyDER)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer process and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
