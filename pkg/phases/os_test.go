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

// A run killed after writing 99-k4t.conf but before `sysctl -p` left the
// file in place and the kernel unset: the live values plan it again.
func TestSysctlDiffers(t *testing.T) {
	file := []byte("# k4t\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n")
	if !sysctlDiffers(file, map[string]string{"net.ipv4.ip_forward": "0", "net.bridge.bridge-nf-call-iptables": "1"}) {
		t.Error("ip_forward 0 not seen")
	}
	if !sysctlDiffers(file, map[string]string{"net.ipv4.ip_forward": "1"}) {
		t.Error("a missing key not seen")
	}
	if sysctlDiffers(file, map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}) {
		t.Error("in place, yet planned")
	}
}
