package templates

import (
	"strings"
	"testing"
	"time"
)

// TestInvalidInputs: every render function refuses bad input with an error
// that names the field, and lists every problem at once.
func TestInvalidInputs(t *testing.T) {
	ka := func(mod func(*KeepalivedInput)) func() ([]byte, error) {
		in := haKeepalived("slb1", "10.77.0.11", []string{"10.77.0.15"}, 150)
		mod(&in)
		return func() ([]byte, error) { return Keepalived(in) }
	}
	etcd := func(mod func(*EtcdInput)) func() ([]byte, error) {
		in := EtcdInput{Name: "master1", Members: haEtcd, ClusterState: "new", ClusterToken: "t"}
		mod(&in)
		return func() ([]byte, error) { return EtcdEnv(in) }
	}
	initWith := func(mod func(*KubeadmInput)) func() ([]byte, error) {
		in := haInit()
		mod(&in)
		return func() ([]byte, error) { return KubeadmInit(in) }
	}
	join := func(mod func(*JoinInput)) func() ([]byte, error) {
		in := JoinInput{
			Node:              NodeRegistration{Name: "worker1", NodeIP: "10.77.0.16"},
			APIServerEndpoint: "10.77.0.100:6443", Token: token, CACertHashes: []string{caHash},
		}
		mod(&in)
		return func() ([]byte, error) { return KubeadmJoin(in) }
	}
	cases := []struct {
		name   string
		render func() ([]byte, error)
		want   []string // substrings of the error
	}{
		{"haproxy zero masters", func() ([]byte, error) {
			return HAProxy(HAProxyInput{FrontendAddress: haVIP})
		}, []string{"zero masters"}},
		{"haproxy bad addresses", func() ([]byte, error) {
			return HAProxy(HAProxyInput{FrontendAddress: "vip", Backends: []Backend{{Name: "m 1", Address: "x"}, {Name: "m 1", Address: "10.0.0.1"}}, StatsAddress: "localhost"})
		}, []string{"FrontendAddress", "Backends[0].Name", "Backends[0].Address", "appears twice", "StatsAddress"}},
		{"haproxy bad check", func() ([]byte, error) {
			return HAProxy(HAProxyInput{FrontendAddress: haVIP, Backends: haMasters, Check: HealthCheck{Path: "readyz", Fall: -1}})
		}, []string{"Check.Path", "Check.Fall"}},
		{"keepalived v2 without password", ka(func(in *KeepalivedInput) { in.AuthPass = "" }), []string{"AuthPass"}},
		{"keepalived v2 long password", ka(func(in *KeepalivedInput) { in.AuthPass = "123456789" }), []string{"1-8 characters"}},
		{"keepalived v2 sub-second adverts", ka(func(in *KeepalivedInput) { in.AdvertInterval = 500 * time.Millisecond }), []string{"whole seconds", "version 3"}},
		{"keepalived v3 with password", ka(func(in *KeepalivedInput) { in.VRRPVersion = 3 }), []string{"no authentication"}},
		{"keepalived ipv6 with v2", ka(func(in *KeepalivedInput) { in.VIP, in.VIPPrefix = "fd00::100", 64 }), []string{"IPv6 VIP needs VRRP version 3"}},
		{"keepalived v4", ka(func(in *KeepalivedInput) { in.VRRPVersion = 4 }), []string{"neither 2 nor 3"}},
		{"keepalived fractional check", ka(func(in *KeepalivedInput) { in.Check.Interval = 200 * time.Millisecond }), []string{"Check.Interval"}},
		{"keepalived ids and prefix", ka(func(in *KeepalivedInput) { in.VirtualRouterID, in.Priority, in.VIPPrefix = 0, 255, 33 }),
			[]string{"VirtualRouterID", "Priority", "VIPPrefix"}},
		{"keepalived self as peer", ka(func(in *KeepalivedInput) { in.UnicastPeers = []string{"10.77.0.11"} }), []string{"own UnicastSrcIP"}},
		{"check bad probe", func() ([]byte, error) { return KeepalivedCheck(KeepalivedCheckInput{ProbeAddress: "127.0.0.1"}) }, []string{"ProbeAddress"}},
		{"etcd zero members", etcd(func(in *EtcdInput) { in.Members = nil }), []string{"zero masters"}},
		{"etcd not a member", etcd(func(in *EtcdInput) { in.Name = "worker1" }), []string{"not one of Members"}},
		{"etcd bad state and token", etcd(func(in *EtcdInput) { in.ClusterState, in.ClusterToken = "old", "" }), []string{"ClusterState", "ClusterToken"}},
		{"etcd timings", etcd(func(in *EtcdInput) {
			in.HeartbeatInterval, in.ElectionTimeout = 200*time.Millisecond, 500*time.Millisecond
		}), []string{"5x"}},
		{"containerd missing", func() ([]byte, error) { return ContainerdConfig(ContainerdInput{RuncPath: "runc"}) }, []string{"SandboxImage", "RuncPath"}},
		{"containerd quote", func() ([]byte, error) {
			return ContainerdConfig(ContainerdInput{SandboxImage: "pause'", RuncPath: "/bin/runc"})
		}, []string{"SandboxImage"}},
		{"containerd unit", func() ([]byte, error) { return ContainerdUnit(ContainerdUnitInput{BinaryPath: "containerd"}) }, []string{"BinaryPath"}},
		{"kubelet relative", func() ([]byte, error) { return KubeletUnit(KubeletInput{BinaryPath: "kubelet"}) }, []string{"BinaryPath"}},
		{"bridge bad cidr", func() ([]byte, error) {
			return BridgeCNI(BridgeInput{PodCIDR: "10.244.1.1/24", Bridge: "averyveryverylongbridge"})
		}, []string{"host bits", "15 characters"}},
		{"sysctl empty", func() ([]byte, error) { return SysctlConf(SysctlInput{}) }, []string{"empty"}},
		{"routes bad", func() ([]byte, error) { return PodRoutes([]Route{{Destination: "10.0.0.0", Gateway: "gw"}}) }, []string{"Destination", "Gateway"}},
		{"init ignore all", initWith(func(in *KubeadmInput) { in.Node.IgnorePreflightErrors = []string{"all"} }), []string{"\"all\" is refused"}},
		{"init no etcd", initWith(func(in *KubeadmInput) { in.EtcdEndpoints = []string{"http://10.0.0.1:2379"} }), []string{"https://"}},
		{"init bad basics", initWith(func(in *KubeadmInput) {
			in.Node.Name, in.KubernetesVersion, in.ControlPlaneEndpoint, in.PodSubnet = "Master_1", "1.37", "10.77.0.100", "x"
		}), []string{"Node.Name", "KubernetesVersion", "ControlPlaneEndpoint", "PodSubnet"}},
		{"init kubelet", initWith(func(in *KubeadmInput) {
			in.Kubelet.CgroupDriver, in.Kubelet.ImageGCLowThresholdPercent = "", 100
		}), []string{"CgroupDriver", "below"}},
		{"init pull policy and token", initWith(func(in *KubeadmInput) { in.Node.ImagePullPolicy, in.BootstrapToken = "Sometimes", "abc" }),
			[]string{"ImagePullPolicy", "BootstrapToken"}},
		{"join bad token and hash", join(func(in *JoinInput) { in.Token, in.CACertHashes = "x", []string{"sha1:00"} }), []string{"Token", "CACertHashes[0]"}},
		{"join no hash", join(func(in *JoinInput) { in.CACertHashes = nil }), []string{"CACertHashes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.render()
			if err == nil {
				t.Fatalf("no error; rendered:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestSecretsNotInErrors: a refused token or password never appears in the
// error text (errors reach logs).
func TestSecretsNotInErrors(t *testing.T) {
	in := haInit()
	in.BootstrapToken = "secret.tokenvalue-with-bad-chars"
	_, err := KubeadmInit(in)
	if err == nil || strings.Contains(err.Error(), "tokenvalue") {
		t.Errorf("want an error without the token, got %v", err)
	}
	k := haKeepalived("slb1", "10.77.0.11", nil, 150)
	k.AuthPass = "p@ss wd"
	_, err = Keepalived(k)
	if err == nil || strings.Contains(err.Error(), "p@ss") {
		t.Errorf("want an error without the password, got %v", err)
	}
}
