package templates

import (
	"time"
)

// Representative inputs: an HA cluster (2 slb hosts holding VIP 10.77.0.100,
// 3 masters running etcd, 2 workers) and a lightweight one (1 master that
// also runs pods, 1 worker, no slb tier). Each case is one golden file.

var (
	haVIP     = "10.77.0.100"
	haMasters = []Backend{
		{Name: "master1", Address: "10.77.0.12"},
		{Name: "master2", Address: "10.77.0.13"},
		{Name: "master3", Address: "10.77.0.14"},
	}
	haEtcd = []EtcdMember{
		{Name: "master1", Address: "10.77.0.12"},
		{Name: "master2", Address: "10.77.0.13"},
		{Name: "master3", Address: "10.77.0.14"},
	}
	caHash = "sha256:" + "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	token  = "k4tabc.0123456789abcdef"
	no     = false
)

func labKubelet() KubeletSettings {
	return KubeletSettings{
		CgroupDriver: "cgroupfs",
		FailCgroupV1: &no,
		EvictionHard: map[string]string{
			"memory.available":  "100Mi",
			"nodefs.available":  "1%",
			"imagefs.available": "1%",
		},
		ImageGCHighThresholdPercent: 100,
		ImageGCLowThresholdPercent:  99,
	}
}

func haKeepalived(name, self string, peers []string, prio int) KeepalivedInput {
	return KeepalivedInput{
		RouterID:        name,
		Interface:       "host0",
		VirtualRouterID: 51,
		Priority:        prio,
		UnicastSrcIP:    self,
		UnicastPeers:    peers,
		VIP:             haVIP,
		VIPPrefix:       24,
		AuthPass:        "k4tVRRP1",
	}
}

func haInit() KubeadmInput {
	return KubeadmInput{
		Node: NodeRegistration{
			Name:                  "master1",
			NodeIP:                "10.77.0.12",
			ImagePullPolicy:       "Never",
			IgnorePreflightErrors: []string{"SystemVerification"},
		},
		KubernetesVersion:    "v1.37.2",
		ClusterName:          "lab",
		ControlPlaneEndpoint: haVIP + ":6443",
		PodSubnet:            "10.244.0.0/16",
		ServiceSubnet:        "10.96.0.0/12",
		EtcdEndpoints:        []string{"https://10.77.0.12:2379", "https://10.77.0.13:2379", "https://10.77.0.14:2379"},
		CertSANs:             []string{haVIP, "10.77.0.12", "10.77.0.13", "10.77.0.14", "master1", "master2", "master3"},
		DNSImageTag:          "v1.14.6",
		BootstrapToken:       token,
		BootstrapTokenTTL:    2 * time.Hour,
		CertificateValidity:  2 * time.Hour,
		Kubelet:              labKubelet(),
	}
}

// goldenCases lists every golden file and how it is rendered.
var goldenCases = []struct {
	file   string
	render func() ([]byte, error)
}{
	{"haproxy-ha.cfg", func() ([]byte, error) {
		return HAProxy(HAProxyInput{
			FrontendAddress: haVIP, FrontendPort: 6443, Backends: haMasters,
			Check:        HealthCheck{Path: "/readyz", Interval: 200 * time.Millisecond, Fall: 2, Rise: 2},
			StatsAddress: "127.0.0.1:8404",
		})
	}},
	{"haproxy-defaults.cfg", func() ([]byte, error) {
		return HAProxy(HAProxyInput{FrontendAddress: haVIP, Backends: haMasters[:1]})
	}},
	{"haproxy-ipv6.cfg", func() ([]byte, error) {
		return HAProxy(HAProxyInput{
			FrontendAddress: "fd00:77::100", Backends: []Backend{
				{Name: "master1", Address: "fd00:77::12"}, {Name: "master2", Address: "fd00:77::13", Port: 16443},
			},
			StatsAddress: "[::1]:8404",
		})
	}},
	{"keepalived-slb1.conf", func() ([]byte, error) {
		return Keepalived(haKeepalived("slb1", "10.77.0.11", []string{"10.77.0.15"}, KeepalivedPriority(0)))
	}},
	{"keepalived-slb2.conf", func() ([]byte, error) {
		return Keepalived(haKeepalived("slb2", "10.77.0.15", []string{"10.77.0.11"}, KeepalivedPriority(1)))
	}},
	{"keepalived-v3-fast.conf", func() ([]byte, error) {
		in := haKeepalived("slb1", "10.77.0.11", []string{"10.77.0.15"}, KeepalivedPriority(0))
		in.VRRPVersion, in.AdvertInterval, in.AuthPass, in.Preempt = 3, 200*time.Millisecond, "", true
		in.Check = ScriptCheck{Interval: time.Second, Fall: 1, Rise: 3}
		return Keepalived(in)
	}},
	{"keepalived-single.conf", func() ([]byte, error) {
		return Keepalived(haKeepalived("slb1", "10.77.0.11", nil, KeepalivedPriority(0)))
	}},
	{"kubeadm-token.yaml", func() ([]byte, error) { return KubeadmToken(token, 2*time.Hour) }},
	{"kubeadm-upgrade.yaml", func() ([]byte, error) {
		return KubeadmUpgrade(KubeadmUpgradeInput{KubernetesVersion: "v1.37.2", IgnorePreflightErrors: []string{"SystemVerification"}})
	}},
	{"undo-kubeadm-master2.sh", func() ([]byte, error) { return KubeadmUndo(KubeadmUndoInput{NodeName: "master2"}) }},
	{"undo-kubeadm-worker1.sh", func() ([]byte, error) { return KubeadmUndo(KubeadmUndoInput{NodeName: "worker1", Worker: true}) }},
	{"reset-worker1.sh", func() ([]byte, error) {
		return NodeReset(NodeResetInput{Host: "worker1", Kube: true, OS: true, HostsBegin: "# BEGIN k4t managed block", HostsEnd: "# END k4t managed block",
			Binaries: []string{"/usr/local/bin/kubelet", "/usr/local/bin/containerd"}})
	}},
	{"reset-master1.sh", func() ([]byte, error) {
		return NodeReset(NodeResetInput{Host: "master1", Kube: true, Etcd: true})
	}},
	{"restore-etcd-master1.sh", func() ([]byte, error) {
		return EtcdRestoreScript(EtcdRestoreInput{ID: "20261201T080000Z", Token: "k4t-lab-restore-20261201T080000Z", Host: "master1",
			Member: true, Members: haEtcd, Snapshot: "/var/lib/k4t/snapshots/restore-20261201T080000Z.db", Master: true})
	}},
	{"restore-etcd-etcd1.sh", func() ([]byte, error) {
		return EtcdRestoreScript(EtcdRestoreInput{ID: "20261201T080000Z", Token: "k4t-lab-restore-20261201T080000Z", Host: "etcd1",
			Member: true, Members: []EtcdMember{{Name: "etcd1", Address: "10.77.0.21"}}, Snapshot: "/var/lib/k4t/snapshots/restore.db",
			DataDir: "/data/etcd", BumpRevision: 5000})
	}},
	{"restore-etcd-master4.sh", func() ([]byte, error) {
		return EtcdRestoreScript(EtcdRestoreInput{ID: "20261201T080000Z", Token: "k4t-lab-restore-20261201T080000Z", Host: "master4", Master: true})
	}},
	{"k4t-etcd-snapshot.sh", func() ([]byte, error) {
		s, _, _, err := EtcdSnapshotJob(EtcdSnapshotJobInput{Host: "master2", Address: "10.77.0.13", Keep: 24, Every: time.Hour, Offset: EtcdSnapshotOffset(1, 3, time.Hour)})
		return s, err
	}},
	{"k4t-etcd-snapshot.service", func() ([]byte, error) {
		_, s, _, err := EtcdSnapshotJob(EtcdSnapshotJobInput{Host: "master2", Address: "10.77.0.13", Keep: 24, Every: time.Hour, Offset: EtcdSnapshotOffset(1, 3, time.Hour)})
		return s, err
	}},
	{"k4t-etcd-snapshot.timer", func() ([]byte, error) {
		_, _, s, err := EtcdSnapshotJob(EtcdSnapshotJobInput{Host: "master2", Address: "10.77.0.13", Keep: 24, Every: time.Hour, Offset: EtcdSnapshotOffset(1, 3, time.Hour)})
		return s, err
	}},
	{"status-master1.sh", func() ([]byte, error) {
		return StatusScript(StatusInput{Host: "master1", Units: []string{"etcd", "containerd", "kubelet"}, Etcd: true, EtcdAddress: "10.77.0.12", Master: true})
	}},
	{"status-slb1.sh", func() ([]byte, error) {
		return StatusScript(StatusInput{Host: "slb1", Units: []string{"haproxy", "keepalived"}, SLB: true, VIP: "10.77.0.100"})
	}},
	{"reset-slb1.sh", func() ([]byte, error) { return NodeReset(NodeResetInput{Host: "slb1", SLB: true, VIP: "10.77.0.100"}) }},
	{"check_haproxy.sh", func() ([]byte, error) { return KeepalivedCheck(KeepalivedCheckInput{}) }},
	{"check_haproxy-probe.sh", func() ([]byte, error) {
		return KeepalivedCheck(KeepalivedCheckInput{ProbeAddress: "127.0.0.1:8404"})
	}},
	{"etcd.service", func() ([]byte, error) {
		return EtcdUnit(EtcdInput{Name: "master1", Members: haEtcd, ClusterState: "new", ClusterToken: "k4t-lab"})
	}},
	{"etcd-master1-kept.env", func() ([]byte, error) {
		// master1 has data: it keeps the list its host has, though master4 joined.
		return EtcdEnv(EtcdInput{Name: "master1", Members: append(haEtcd, EtcdMember{Name: "master4", Address: "10.77.0.16"}), ClusterState: "new", ClusterToken: "k4t-lab",
			InitialCluster: "master1=https://10.77.0.12:2380,master2=https://10.77.0.13:2380,master3=https://10.77.0.14:2380"})
	}},
	{"etcd-master1.env", func() ([]byte, error) {
		return EtcdEnv(EtcdInput{Name: "master1", Members: haEtcd, ClusterState: "new", ClusterToken: "k4t-lab"})
	}},
	{"etcd-master3-existing.env", func() ([]byte, error) {
		return EtcdEnv(EtcdInput{
			Name: "master3", Members: haEtcd, ClusterState: "existing", ClusterToken: "k4t-lab",
			DataDir: "/data/etcd", HeartbeatInterval: 250 * time.Millisecond, ElectionTimeout: 2500 * time.Millisecond,
		})
	}},
	{"etcd-light.env", func() ([]byte, error) {
		return EtcdEnv(EtcdInput{Name: "master1", Members: haEtcd[:1], ClusterState: "new", ClusterToken: "light"})
	}},
	{"sysctl-slb.conf", func() ([]byte, error) { return SysctlConf(SysctlInput{NonLocalBind: true}) }},
	{"sysctl-node.conf", func() ([]byte, error) { return SysctlConf(SysctlInput{KubernetesNode: true}) }},
	{"sysctl-slb-node.conf", func() ([]byte, error) {
		return SysctlConf(SysctlInput{KubernetesNode: true, NonLocalBind: true})
	}},
	{"containerd-lab.toml", func() ([]byte, error) {
		return ContainerdConfig(ContainerdInput{
			SandboxImage: "registry.k8s.io/pause:3.10.2", RuncPath: "/usr/local/sbin/runc",
			RestrictOOMScoreAdj: true,
		})
	}},
	{"containerd-systemd.toml", func() ([]byte, error) {
		return ContainerdConfig(ContainerdInput{
			SandboxImage: "registry.example.com/k8s/pause:3.10.2", RuncPath: "/opt/k4t/bin/runc",
			SystemdCgroup: true, CNIBinDir: "/opt/k4t/cni/bin", CNIConfDir: "/etc/cni/net.d",
		})
	}},
	{"containerd-mirrors.toml", func() ([]byte, error) {
		return ContainerdConfig(ContainerdInput{
			SandboxImage: "registry.k8s.io/pause:3.10.2", RuncPath: "/usr/local/sbin/runc",
			RegistryConfigPath: RegistryHostsDir,
		})
	}},
	{"hosts-registry.k8s.io.toml", func() ([]byte, error) {
		return RegistryHosts(RegistryHostsInput{Registry: "registry.k8s.io", Mirrors: []string{"https://mirror.example.com:5000", "http://10.77.0.1:5000"}})
	}},
	{"hosts-registry.k8s.io-ca.toml", func() ([]byte, error) {
		return RegistryHosts(RegistryHostsInput{Registry: "registry.k8s.io", Mirrors: []string{"https://mirror.example.com:5000", "http://10.77.0.1:5000"},
			CAs: map[string]string{"https://mirror.example.com:5000": "/etc/containerd/certs.d/registry.k8s.io/mirror.example.com_5000.crt"}})
	}},
	{"hosts-docker.io.toml", func() ([]byte, error) {
		return RegistryHosts(RegistryHostsInput{Registry: "docker.io", Mirrors: []string{"https://mirror.gcr.io"}})
	}},
	{"containerd.service", func() ([]byte, error) {
		return ContainerdUnit(ContainerdUnitInput{PATH: "/opt/k4t/bin:" + DefaultContainerdPATH})
	}},
	{"kubelet.service", func() ([]byte, error) { return KubeletUnit(KubeletInput{}) }},
	{"10-kubeadm.conf", func() ([]byte, error) { return KubeletDropIn(KubeletInput{}) }},
	{"bridge-master1.conflist", func() ([]byte, error) { return BridgeCNI(BridgeInput{PodCIDR: "10.244.0.0/24"}) }},
	{"bridge-mtu.conflist", func() ([]byte, error) {
		return BridgeCNI(BridgeInput{PodCIDR: "10.244.3.0/24", Bridge: "k4t0", MTU: 1450})
	}},
	{"pod-routes-master1", func() ([]byte, error) {
		return PodRoutes([]Route{
			{Destination: "10.244.4.0/24", Gateway: "10.77.0.17"},
			{Destination: "10.244.1.0/24", Gateway: "10.77.0.13"},
			{Destination: "10.244.2.0/24", Gateway: "10.77.0.14"},
			{Destination: "10.244.3.0/24", Gateway: "10.77.0.16"},
		})
	}},
	{"pod-routes-none", func() ([]byte, error) { return PodRoutes(nil) }},
	{"k4t-pod-routes.service", PodRoutesService},
	{"kubeadm-init-ha.yaml", func() ([]byte, error) { return KubeadmInit(haInit()) }},
	{"kubeadm-init-light.yaml", func() ([]byte, error) {
		return KubeadmInit(KubeadmInput{
			Node: NodeRegistration{
				Name: "solo", NodeIP: "192.168.10.5", Schedulable: true,
				CRISocket: "unix:///run/containerd/containerd.sock",
			},
			KubernetesVersion:    "v1.37.2",
			ControlPlaneEndpoint: "192.168.10.5:6443",
			PodSubnet:            "10.244.0.0/16",
			ServiceSubnet:        "10.96.0.0/12",
			DNSDomain:            "k4t.local",
			EtcdEndpoints:        []string{"https://192.168.10.5:2379"},
			CertSANs:             []string{"192.168.10.5", "solo", "solo.example.com"},
			ImageRepository:      "registry.example.com/k8s",
			Kubelet:              KubeletSettings{CgroupDriver: "systemd"},
		})
	}},
	{"kubeadm-join-master2.yaml", func() ([]byte, error) {
		return KubeadmJoin(JoinInput{
			Node: NodeRegistration{
				Name: "master2", NodeIP: "10.77.0.13", ImagePullPolicy: "Never",
				IgnorePreflightErrors: []string{"SystemVerification"},
			},
			APIServerEndpoint: haVIP + ":6443", Token: token, CACertHashes: []string{caHash},
			ControlPlane: true,
		})
	}},
	{"kubeadm-join-worker1.yaml", func() ([]byte, error) {
		return KubeadmJoin(JoinInput{
			Node: NodeRegistration{
				Name: "worker1", NodeIP: "10.77.0.16", ImagePullPolicy: "Never",
				IgnorePreflightErrors: []string{"SystemVerification"},
			},
			APIServerEndpoint: haVIP + ":6443", Token: token, CACertHashes: []string{caHash},
		})
	}},
}
