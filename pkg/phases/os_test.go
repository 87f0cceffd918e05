package phases

import (
	"testing"

	"k4t.io/k4t/pkg/apis/v1alpha1"
)

func TestEtcHostsBlock(t *testing.T) {
	c := &v1alpha1.Cluster{}
	c.Spec.Hosts = []v1alpha1.Host{{Name: "m1", InternalAddress: "10.0.0.2"}}
	first := etcHosts([]byte("127.0.0.1 localhost"), c)
	want := "127.0.0.1 localhost\n# BEGIN k4t managed block\n10.0.0.2 m1\n# END k4t managed block\n"
	if string(first) != want {
		t.Fatalf("got %q", first)
	}
	if again := etcHosts(first, c); string(again) != want {
		t.Fatalf("not idempotent: %q", again)
	}
}
