package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/transport/sshtest"
)

// hostRoot makes a fake node filesystem under a temp dir: the master's PKI, kubeconfigs
// with embedded keys, and kubelet's client pem (certificate + key in one file).
func hostRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	pki := filepath.Join(root, "etc/kubernetes/pki")
	os.MkdirAll(filepath.Dir(pki), 0o755)
	spec := certs.Spec{ClusterName: "t1", Validity: 2 * time.Hour, EtcdMembers: []certs.Member{{Name: "m1", IPs: []string{"127.0.0.1"}}}}
	if _, err := certs.Ensure(pki, spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueClient(pki, "ca", "admin", "kubernetes-admin", []string{"kubeadm:cluster-admins"}, 2*time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	crt, _ := os.ReadFile(filepath.Join(pki, "admin.crt"))
	key, _ := os.ReadFile(filepath.Join(pki, "admin.key"))
	ca, _ := os.ReadFile(filepath.Join(pki, "ca.crt"))
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["t1"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["admin"] = &clientcmdapi.Context{Cluster: "t1", AuthInfo: "admin"}
	kc, _ := clientcmd.Write(*cfg)
	os.WriteFile(filepath.Join(root, "etc/kubernetes/admin.conf"), kc, 0o600)
	os.MkdirAll(filepath.Join(root, "var/lib/kubelet/pki"), 0o700)
	os.WriteFile(filepath.Join(root, "var/lib/kubelet/pki/kubelet-client-current.pem"), append(crt, key...), 0o600)
	return root
}

// chrootExec runs commands with real sh, with every quoted absolute path moved under root,
// and keeps what the host sent back.
func chrootExec(root string, sent *bytes.Buffer, mu *sync.Mutex) sshtest.ExecFunc {
	return func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
		// The transport runs `timeout … sh -c '<command>'`, so the command's own
		// quotes arrive as '\''.
		if strings.Contains(cmd, "sh -s -- ") {
			cmd = strings.ReplaceAll(cmd, `'\''/`, `'\''`+root+"/")
			var out bytes.Buffer
			code := sshtest.Shell(cmd, stdin, &out, stderr)
			mu.Lock()
			sent.Write(out.Bytes())
			mu.Unlock()
			stdout.Write([]byte(strings.ReplaceAll(out.String(), root, "")))
			return code
		}
		return fakeFacts(cmd, stdin, stdout, stderr)
	}
}

func TestCheckExpirationOverSSH(t *testing.T) {
	root := hostRoot(t)
	var sent bytes.Buffer
	var mu sync.Mutex
	srv := sshtest.Start(t, sshtest.Options{Exec: chrootExec(root, &sent, &mu)})
	inv := inventory(t, srv.Port(), "keyFile: "+keyFile(t))
	state := t.TempDir()
	out, code := k4tRun(t, "--state-dir", state, "-o", "json", "certs", "check-expiration", "--accept-new-hosts", "-f", inv)
	if code != exitRuntime {
		t.Errorf("exit %d with missing files, want %d\n%s", code, exitRuntime, out)
	}
	rows := map[string]map[string]any{}
	for _, line := range strings.Split(out, "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["host"] != nil {
			rows[fmt.Sprint(r["host"], " ", r["certificate"])] = r
		}
	}
	for name, wantErr := range map[string]string{
		"m1 /etc/kubernetes/pki/ca.crt":                      "",
		"m1 /etc/kubernetes/pki/apiserver-etcd-client.crt":   "",
		"m1 /etc/kubernetes/admin.conf#user/admin":           "",
		"m1 /var/lib/kubelet/pki/kubelet-client-current.pem": "",
		"m1 /etc/kubernetes/pki/apiserver.crt":               "missing",
		"m1 /etc/kubernetes/scheduler.conf":                  "missing",
		"m1 /etc/etcd/pki/server.crt":                        "missing",
		"bastion admin.conf":                                 "missing",
	} {
		r, ok := rows[name]
		if !ok {
			t.Errorf("no row %q", name)
			continue
		}
		if got, _ := r["error"].(string); !strings.HasPrefix(got, wantErr) || (wantErr == "" && got != "") {
			t.Errorf("%s: error %q, want %q", name, got, wantErr)
		}
	}
	if r := rows["m1 /etc/kubernetes/pki/ca.crt"]; r != nil && r["isCA"] != true {
		t.Errorf("ca row %v", r)
	}
	if r := rows["m1 /etc/kubernetes/admin.conf#user/admin"]; r != nil && r["ca"] != "/etc/kubernetes/pki/ca.crt" {
		t.Errorf("admin.conf CA %v", r["ca"])
	}
	mu.Lock()
	for _, secret := range []string{"PRIVATE KEY", "client-key-data"} {
		if strings.Contains(sent.String(), secret) {
			t.Errorf("the host sent %q to the bastion", secret)
		}
	}
	mu.Unlock()

	// Text output: a table, and the first problem as the error.
	out, code = k4tRun(t, "--state-dir", state, "certs", "check-expiration", "-f", inv)
	if code != exitRuntime || !strings.Contains(out, "HOST") || !strings.Contains(out, "ERROR: missing") || !strings.Contains(out, "k4t certs renew") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
}

func TestCertsUsage(t *testing.T) {
	inv := inventory(t, 1, "keyFile: /nonexistent")
	state := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"certs", "renew", "-f", inv}, "or pass --all"},
		{[]string{"certs", "renew", "--all", "apiserver", "-f", inv}, "not both"},
		{[]string{"certs", "renew", "apiservr", "-f", inv}, `unknown certificate "apiservr"`},
		{[]string{"certs", "renew", "--if-expiring-within", "thirty", "-f", inv}, "invalid duration"},
		{[]string{"certs", "schedule", "--remove", "--status", "-f", inv}, "not both"},
		{[]string{"certs", "schedule", "--every", "30s", "-f", inv}, "shorter than a minute"},
	} {
		out, code := k4tRun(t, append([]string{"--state-dir", state}, tc.args...)...)
		if code != exitUsage || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q\n%s", tc.args, code, exitUsage, tc.want, out)
		}
	}
	out, code := k4tRun(t, "--state-dir", state, "certs", "schedule", "--status", "-f", inv)
	if code != 0 || !strings.Contains(out, "not installed") || !strings.Contains(out, "last run: never") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
}

func TestCAWarning(t *testing.T) {
	now := time.Now()
	rows := []certs.Expiry{
		{Host: "m1", Name: "/etc/kubernetes/pki/ca.crt", IsCA: true, NotAfter: now.Add(100 * 24 * time.Hour), Left: 100 * 24 * time.Hour},
		{Host: "m1", Name: "/var/lib/kubelet/pki/kubelet.crt[2]", IsCA: true, NotAfter: now.Add(300 * 24 * time.Hour), Left: 300 * 24 * time.Hour},
		{Host: "m1", Name: "/etc/kubernetes/pki/apiserver.crt", CA: "/etc/kubernetes/pki/ca.crt", NotAfter: now.Add(time.Hour), Left: time.Hour},
	}
	for _, output := range []string{"text", "json"} {
		root := newRootCmd()
		var out, errb bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errb)
		if err := reportExpiry(root, output, rows, 365*24*time.Hour); err != nil {
			t.Errorf("%s: %v", output, err)
		}
		all := out.String() + errb.String()
		if strings.Count(all, "k4t certs renew-ca") != 1 || !strings.Contains(all, "pki/ca.crt") {
			t.Errorf("%s: want one CA warning:\n%s", output, all)
		}
	}
	rows[2].Left, rows[2].NotAfter = -time.Minute, now.Add(-time.Minute)
	quiet := newRootCmd()
	quiet.SetOut(io.Discard)
	if err := reportExpiry(quiet, "json", rows, time.Hour); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired leaf: %v", err)
	}
}
