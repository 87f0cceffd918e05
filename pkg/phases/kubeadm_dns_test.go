package phases

import "testing"

// dns.imageTag is set however kubeadm wrote the dns block, and nothing else
// in the text moves.
func TestSetConfigDNSTag(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"apiVersion: v\ndns:\n  imageTag: v1.14.2\netcd: {}\n", "apiVersion: v\ndns:\n  imageTag: v1.14.6\netcd: {}\n"},
		{"dns: {}\netcd: {}\n", "dns:\n  imageTag: v1.14.6\netcd: {}\n"},
		{"dns:\n  imageRepository: r.example\netcd: {}\n", "dns:\n  imageRepository: r.example\n  imageTag: v1.14.6\netcd: {}\n"},
		{"etcd: {}\nkind: ClusterConfiguration", "etcd: {}\nkind: ClusterConfiguration\ndns:\n  imageTag: v1.14.6"},
	} {
		got, err := setConfigDNSTag(tc.in, "v1.14.6")
		if err != nil || got != tc.want {
			t.Errorf("%q:\ngot  %q (%v)\nwant %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"dns: [", "dns:\r\n  imageTag: v1\r\n", "dns: {imageTag: v1}\n"} {
		if got, err := setConfigDNSTag(bad, "v1.14.6"); err == nil {
			t.Errorf("%q: no error, got %q", bad, got)
		}
	}
}
