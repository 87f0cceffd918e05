package templates

// StatusInput is what `k4t status` reads on one host.
type StatusInput struct {
	Host string
	// Units k4t installed there (haproxy, keepalived, etcd, containerd, kubelet).
	Units []string
	// SLB: whether it holds VIP, and HAProxy's view of the masters.
	SLB bool
	VIP string
	// Etcd: the member's own status, health and alarms; EtcdAddress its IP.
	Etcd        bool
	EtcdAddress string
	// Master: kube-apiserver's /readyz on Port (default 6443).
	Master bool
	Port   int
	// EtcdDataDir; default /var/lib/etcd.
	EtcdDataDir string
}

// StatusScript renders the read-only status script, run with `sh -s`.
func StatusScript(in StatusInput) ([]byte, error) {
	p := problems{what: "status.sh"}
	p.name("Host", in.Host)
	for _, u := range in.Units {
		p.name("Units", u)
	}
	if in.SLB {
		p.ip("VIP", in.VIP)
	}
	if in.Etcd {
		p.ip("EtcdAddress", in.EtcdAddress)
	}
	port := orDefault(in.Port, 6443)
	p.port("Port", port)
	data := orDefault(in.EtcdDataDir, DefaultEtcdData)
	p.absPath("EtcdDataDir", data)
	if containsSpace(data) {
		p.add("EtcdDataDir: %q has spaces", data)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	units := ""
	for i, u := range in.Units {
		if i > 0 {
			units += " "
		}
		units += u
	}
	return render("status.sh.tmpl", struct {
		StatusInput
		Units, Dirs, HAProxySocket, Backend, EtcdEndpoint, EtcdCA, EtcdCert, EtcdKey string
		SnapshotDir, AdminConf, Certs                                                string
		Port                                                                         int
	}{StatusInput: in, Units: units, Dirs: "/ " + data + " /var/lib/containerd /var/lib/kubelet",
		HAProxySocket: "/run/haproxy/admin.sock", Backend: HAProxyBackendName,
		EtcdEndpoint: etcdURL(in.EtcdAddress, 2379), EtcdCA: EtcdCAFile, EtcdCert: EtcdHealthCert, EtcdKey: EtcdHealthKey,
		SnapshotDir: EtcdSnapshotDir, AdminConf: "/etc/kubernetes/admin.conf",
		Certs: "/etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt " + EtcdPKIDir + "/*.crt /var/lib/kubelet/pki/kubelet-client-current.pem",
		Port:  port})
}
