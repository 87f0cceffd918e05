package phases

import (
	"strings"
	"testing"

	"k4t.io/k4t/pkg/state"
)

// A token file that is not kubeadm's form is an error naming the fix, not a panic.
func TestBootstrapTokenForm(t *testing.T) {
	r, _ := etcdTestRun(t)
	st, err := state.Open(t.TempDir(), "t")
	if err != nil {
		t.Fatal(err)
	}
	r.State = st
	tok, err := bootstrapToken(r)
	if err != nil || !bootstrapTokenRE.MatchString(tok) {
		t.Fatalf("new token %q: %v", tok, err)
	}
	if err := st.WriteFile(st.Path("secrets", "bootstrap-token"), []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrapToken(r); err == nil || !strings.Contains(err.Error(), "delete") {
		t.Errorf("short token: %v", err)
	}
}
