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

	if _, err = run("artifact", "verify", "--dir", dir, "--manifest", "m.yaml"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("both flags: %v", err)
	}
}
