package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestArtifactVerify(t *testing.T) {
	dir := t.TempDir()
	data := []byte("a binary")
	if err := os.WriteFile(filepath.Join(dir, "x"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	good := hex.EncodeToString(h[:])
	manifest := func(sum string) {
		t.Helper()
		m := "version: t\nartifacts:\n- {name: x, version: v1, kind: binary, path: x, install: /usr/local/bin/x, sha256: '" + sum + "'}\n"
		if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}

	manifest(good)
	out, err := run("artifact", "verify", "--dir", dir)
	if err != nil || !strings.Contains(out, "OK") || !strings.Contains(out, good) {
		t.Fatalf("verify good: %v\n%s", err, out)
	}
	out, err = run("artifact", "list", "--dir", dir, "-o", "json")
	if err != nil || !strings.Contains(out, `"status":"present"`) {
		t.Fatalf("list json: %v\n%s", err, out)
	}

	manifest(strings.Repeat("0", 64))
	out, err = run("artifact", "verify", "--dir", dir)
	if err == nil || !strings.Contains(out, "FAIL x:") || !strings.Contains(out, good) {
		t.Fatalf("verify bad: %v\n%s", err, out)
	}

	if _, err = run("artifact", "verify", "--dir", dir, "--manifest", "m.yaml"); err == nil || !strings.Contains(err.Error(), "use one of") {
		t.Fatalf("both flags: %v", err)
	}
}

// export writes a bundle of an inventory's artifacts; verify --bundle checks
// it; an inventory with spec.artifacts.bundle lists them from it.
func TestArtifactExportBundle(t *testing.T) {
	dir := t.TempDir()
	data := []byte("a kubeadm")
	if err := os.WriteFile(filepath.Join(dir, "kubeadm"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	m := "version: t\nartifacts:\n- {name: kubeadm, version: v1.37.2, kind: binary, path: kubeadm, install: /usr/local/bin/kubeadm, sha256: '" + hex.EncodeToString(h[:]) + "'}\n"
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := func(artifacts string) string {
		p := filepath.Join(t.TempDir(), "hosts.yaml")
		s := "apiVersion: k4t.io/v1alpha1\nkind: Cluster\nmetadata: {name: exp}\nspec:\n  hosts:\n  - {name: master1, address: 10.0.0.21, roles: [master]}\n" +
			"  kubernetes: {version: v1.37.2}\n  artifacts: {" + artifacts + "}\n"
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("K4T_DOWNLOAD_CACHE", t.TempDir())
	run := func(args ...string) (string, error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"--state-dir", t.TempDir()}, args...))
		err := root.Execute()
		return out.String(), err
	}
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	out, err := run("artifact", "export", "-f", inv("dir: "+dir), bundle)
	if err != nil || !strings.Contains(out, "1 artifacts") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err = run("artifact", "verify", "--bundle", bundle); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("verify --bundle: %v\n%s", err, out)
	}
	if out, err = run("artifact", "list", "-f", inv("bundle: "+bundle)); err != nil || !strings.Contains(out, "present") {
		t.Fatalf("list -f with a bundle: %v\n%s", err, out)
	}
	if _, err := os.Stat(bundle + ".partial"); err == nil {
		t.Error("the .partial file is left")
	}
}
