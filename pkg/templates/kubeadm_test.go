package templates

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k4t.io/k4t/pkg/testenv"
)

// defaultKubeadm is where hack/build-artifacts puts the kubeadm it builds.
const defaultKubeadm = "/var/cache/k4t/artifacts/v1.37.2/bin/kubeadm"

// kubeadmBinary finds the real kubeadm: $K4T_KUBEADM, else defaultKubeadm.
// Missing: skip locally, fail in CI (CI=true).
func kubeadmBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("K4T_KUBEADM")
	if bin == "" {
		bin = defaultKubeadm
	}
	if st, err := os.Stat(bin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return bin
	}
	testenv.Missing(t, "kubeadm not built: run make artifacts (looked for %s; set K4T_KUBEADM to override)", bin)
	return ""
}

// TestKubeadmValidatesConfigs runs `kubeadm config validate` on every
// rendered kubeadm config: the real binary is the judge of field names,
// versions and cross-field rules.
func TestKubeadmValidatesConfigs(t *testing.T) {
	bin := kubeadmBinary(t)
	files := casesWithPrefix("kubeadm-")
	if len(files) == 0 {
		t.Fatal("no kubeadm golden cases")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), f)
			if err := os.WriteFile(path, rendered(t, f), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "config", "validate", "--config", path).CombinedOutput()
			if err != nil {
				t.Fatalf("kubeadm config validate --config %s: %v\n%s", f, err, out)
			}
			// kubeadm warns (and still exits 0) on unknown or deprecated
			// fields: those are rendering bugs too.
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "W") && (strings.Contains(line, "unknown field") ||
					strings.Contains(line, "deprecated") || strings.Contains(line, "strict decoding")) {
					t.Errorf("%s: kubeadm warns: %s", f, line)
				}
			}
			t.Logf("%s: %s", f, strings.TrimSpace(string(out)))
		})
	}
}
