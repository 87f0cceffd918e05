package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/transport/sshtest"
)

// k4tRun runs the CLI in-process and returns its output and exit code.
func k4tRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx := context.Background()
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(&out, "Error:", err)
	}
	return out.String(), exitCode(ctx, err)
}

// fakeFacts answers the preflight facts command like a healthy host.
func fakeFacts(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	if strings.Contains(cmd, "sh -s --") {
		io.Copy(io.Discard, stdin)
		now := time.Now()
		fmt.Fprintf(stdout, "os=debian\nos_version=12\narch=x86_64\nhostname=m1\ninit=systemd\nmemtotal=4000000\ndisk_free_kb=90000000\nswap=0\ntime=%d.%09d\nbr_netfilter=yes\noverlay=yes\npkg=apt-get\n", now.Unix(), now.Nanosecond())
	}
	return 0
}

func inventory(t *testing.T, port int, ssh string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts.yaml")
	inv := fmt.Sprintf(`apiVersion: k4t.io/v1alpha1
kind: Cluster
metadata: {name: t1}
spec:
  hosts:
    - name: m1
      address: 127.0.0.1
      port: %d
      roles: [master]
      ssh: {%s, connectTimeout: 3s}
`, port, ssh)
	if err := os.WriteFile(p, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func keyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(p, []byte(testKey), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInputErrors(t *testing.T) {
	state := t.TempDir()
	ok := sshtest.Start(t, sshtest.Options{Exec: fakeFacts})
	failing := sshtest.Start(t, sshtest.Options{Exec: func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
		io.Copy(io.Discard, stdin)
		fmt.Fprintln(stderr, "sh: 1: boom: not found")
		return 127
	}})
	key := keyFile(t)
	malformed := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(malformed, []byte("apiVersion: k4t.io/v1alpha1\nkind: Cluster\nspec:\n  hosts: [\n"), 0o644)
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	os.WriteFile(typo, []byte("apiVersion: k4t.io/v1alpha1\nkind: Cluster\nspec:\n  hosts:\n    - name: m1\n      adress: 10.0.0.1\n      roles: [master]\n"), 0o644)

	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"malformed yaml", []string{"plan", "-f", malformed}, exitUsage, []string{"bad.yaml", "line"}},
		{"unknown field", []string{"plan", "-f", typo}, exitUsage, []string{"spec.hosts[0].adress", "line 6"}},
		{"missing key file", []string{"plan", "--only", "preflight", "-f", inventory(t, ok.Port(), "keyFile: /nonexistent/id")}, exitRuntime,
			[]string{"m1 / preflight", "/nonexistent/id"}},
		{"unknown host key", []string{"plan", "--only", "preflight", "-f", inventory(t, ok.Port(), "keyFile: "+key)}, exitRuntime,
			[]string{"m1 / preflight", "unknown host key", "--accept-new-hosts"}},
		{"failing remote command", []string{"plan", "--only", "preflight", "--accept-new-hosts", "-f", inventory(t, failing.Port(), "keyFile: "+key)}, exitRuntime,
			[]string{"m1 / preflight", "gathering facts", "exited 127", "boom: not found"}},
		{"unknown phase", []string{"plan", "--only", "etc", "-f", inventory(t, ok.Port(), "keyFile: "+key)}, exitUsage, []string{`unknown phase "etc"`}},
		{"healthy host", []string{"plan", "--only", "preflight", "--accept-new-hosts", "-f", inventory(t, ok.Port(), "keyFile: "+key)}, exitOK,
			[]string{"1 host(s) passed preflight"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := k4tRun(t, append([]string{"--state-dir", state}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// Settings come from K4T_* env vars through viper: K4T_OUTPUT=json.
func TestEnvSettingsAndJSONEvents(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Exec: fakeFacts})
	t.Setenv("K4T_OUTPUT", "json")
	out, code := k4tRun(t, "--state-dir", t.TempDir(), "plan", "--only", "preflight", "--accept-new-hosts", "-f", inventory(t, srv.Port(), "keyFile: "+keyFile(t)))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{`"type":"run_start"`, `"type":"phase_end","run":`, `"type":"run_end"`, `"duration_s":`} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON events lack %s:\n%s", want, out)
		}
	}
}

// testKey is a throwaway ed25519 key made for these tests only.
const testKey = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCof8r+0+AyuKANwI10TqCEA6CIKpMinbLqOEmEziqeagAAAJAkehhCJHoY
QgAAAAtzc2gtZWQyNTUxOQAAACCof8r+0+AyuKANwI10TqCEA6CIKpMinbLqOEmEziqeag
AAAEC8W+Q65p70xutuG/lsC79AJsPVSh8vKGRezeTJcofBxqh/yv7T4DK4oA3AjXROoIQD
oIgqkyKdsuo4SYTOKp5qAAAAC2s0dC10ZXN0a2V5AQI=
-----END OPENSSH PRIVATE KEY-----`
