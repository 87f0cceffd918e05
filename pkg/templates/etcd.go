package templates

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Where the etcd unit, its environment file and its certificates live on a
// host. pkg/certs' files must land at these paths.
const (
	EtcdEnvPath    = "/etc/etcd/etcd.env"
	EtcdPKIDir     = "/etc/etcd/pki"
	EtcdCAFile     = EtcdPKIDir + "/ca.crt"     // CA for clients and peers
	EtcdServerCert = EtcdPKIDir + "/server.crt" // client-facing serving cert
	EtcdServerKey  = EtcdPKIDir + "/server.key"
	EtcdPeerCert   = EtcdPKIDir + "/peer.crt" // peer serving and client cert
	EtcdPeerKey    = EtcdPKIDir + "/peer.key"
	// EtcdHealthCert and EtcdHealthKey: the client certificate k4t's
	// health checks, etcdctl and the scheduled snapshots use.
	EtcdHealthCert  = EtcdPKIDir + "/healthcheck-client.crt"
	EtcdHealthKey   = EtcdPKIDir + "/healthcheck-client.key"
	DefaultEtcdBin  = "/usr/local/bin/etcd"
	DefaultEtcdData = "/var/lib/etcd"
	// EtcdMetricsURL serves /metrics and /health over plain HTTP on loopback.
	EtcdMetricsURL = "http://127.0.0.1:2381"
)

// EtcdInput is one etcd member's systemd unit and environment file.
type EtcdInput struct {
	// Name of this member; must be one of Members.
	Name string
	// Members is the whole initial cluster, this member included.
	Members []EtcdMember
	// ClusterState is "new" when every member starts together, "existing"
	// when this member joins a running cluster (after `etcdctl member add`).
	ClusterState string
	// InitialCluster, when set, is written as ETCD_INITIAL_CLUSTER instead
	// of the one Members make: etcd reads it only while the data dir is
	// empty, so a member with data keeps what its host has.
	InitialCluster string
	// ClusterToken tells clusters apart; the same on every member.
	ClusterToken string
	// DataDir; default /var/lib/etcd.
	DataDir string
	// ClientPort and PeerPort; defaults 2379 and 2380.
	ClientPort int
	PeerPort   int
	// HeartbeatInterval and ElectionTimeout, whole milliseconds; zero keeps
	// etcd's defaults (100ms, 1000ms).
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// BinaryPath of etcd; default /usr/local/bin/etcd.
	BinaryPath string
	// LimitNOFILE for the unit; default 65536.
	LimitNOFILE int
}

// EtcdMember is one member of the cluster.
type EtcdMember struct {
	Name    string // host name, e.g. "master1"
	Address string // IP used for peer and client traffic
}

type etcdView struct {
	Name, DataDir, ClusterState, ClusterToken string
	PeerURL, ClientURLs, ListenClientURLs     string
	InitialCluster, MetricsURL                string
	HeartbeatMS, ElectionMS                   string
	CAFile, ServerCert, ServerKey             string
	PeerCert, PeerKey, EnvFile, Binary        string
	LimitNOFILE                               int
}

func (in EtcdInput) view() (etcdView, error) {
	p := problems{what: "etcd"}
	p.name("Name", in.Name)
	clientPort := orDefault(in.ClientPort, 2379)
	peerPort := orDefault(in.PeerPort, 2380)
	p.port("ClientPort", clientPort)
	p.port("PeerPort", peerPort)
	if len(in.Members) == 0 {
		p.add("Members: need at least one member (zero masters or etcd hosts?)")
	}
	var self *EtcdMember
	seen := map[string]bool{}
	cluster := make([]string, 0, len(in.Members))
	for i, m := range in.Members {
		p.name("Members["+itoa(i)+"].Name", m.Name)
		p.ip("Members["+itoa(i)+"].Address", m.Address)
		if seen[m.Name] {
			p.add("Members[%d].Name: %q appears twice", i, m.Name)
		}
		seen[m.Name] = true
		if m.Name == in.Name {
			self = &in.Members[i]
		}
		cluster = append(cluster, m.Name+"="+etcdURL(m.Address, peerPort))
	}
	if in.Name != "" && len(in.Members) > 0 && self == nil {
		p.add("Name: %q is not one of Members", in.Name)
	}
	if strings.ContainsAny(in.InitialCluster, " \t\r\n\"'$`\\") {
		p.add("InitialCluster: %q is not one NAME=URL,... value", in.InitialCluster)
	}
	if in.ClusterState != "new" && in.ClusterState != "existing" {
		p.add("ClusterState: %q is neither \"new\" nor \"existing\"", in.ClusterState)
	}
	p.name("ClusterToken", in.ClusterToken)
	dataDir := orDefault(in.DataDir, DefaultEtcdData)
	p.absPath("DataDir", dataDir)
	bin := orDefault(in.BinaryPath, DefaultEtcdBin)
	p.absPath("BinaryPath", bin)
	ms := func(field string, d time.Duration) string {
		if d == 0 {
			return ""
		}
		if d < time.Millisecond || d%time.Millisecond != 0 {
			p.add("%s: %s must be whole milliseconds", field, d)
		}
		return strconv.FormatInt(d.Milliseconds(), 10)
	}
	hb := ms("HeartbeatInterval", in.HeartbeatInterval)
	el := ms("ElectionTimeout", in.ElectionTimeout)
	if in.HeartbeatInterval > 0 && in.ElectionTimeout > 0 && in.ElectionTimeout < 5*in.HeartbeatInterval {
		p.add("ElectionTimeout: %s should be at least 5x HeartbeatInterval (%s)", in.ElectionTimeout, in.HeartbeatInterval)
	}
	nofile := orDefault(in.LimitNOFILE, 65536)
	if nofile < 1024 {
		p.add("LimitNOFILE: %d is below 1024", nofile)
	}
	if err := p.err(); err != nil {
		return etcdView{}, err
	}
	return etcdView{
		Name:             in.Name,
		DataDir:          dataDir,
		ClusterState:     in.ClusterState,
		ClusterToken:     in.ClusterToken,
		PeerURL:          etcdURL(self.Address, peerPort),
		ClientURLs:       etcdURL(self.Address, clientPort),
		ListenClientURLs: listenClientURLs(self.Address, clientPort),
		InitialCluster:   orDefault(in.InitialCluster, strings.Join(cluster, ",")),
		MetricsURL:       EtcdMetricsURL,
		HeartbeatMS:      hb,
		ElectionMS:       el,
		CAFile:           EtcdCAFile,
		ServerCert:       EtcdServerCert,
		ServerKey:        EtcdServerKey,
		PeerCert:         EtcdPeerCert,
		PeerKey:          EtcdPeerKey,
		EnvFile:          EtcdEnvPath,
		Binary:           bin,
		LimitNOFILE:      nofile,
	}, nil
}

// listenClientURLs is the member's address plus loopback (for etcdctl and
// local health checks), once when they are the same.
func listenClientURLs(addr string, port int) string {
	urls := etcdURL(addr, port)
	if addr != "127.0.0.1" {
		urls += "," + etcdURL("127.0.0.1", port)
	}
	return urls
}

func etcdURL(addr string, port int) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Sprintf("https://%s:%d", addr, port)
	}
	return "https://" + netip.AddrPortFrom(a, uint16(port)).String()
}

// EtcdUnit renders /etc/systemd/system/etcd.service.
func EtcdUnit(in EtcdInput) ([]byte, error) {
	v, err := in.view()
	if err != nil {
		return nil, err
	}
	return render("etcd.service.tmpl", v)
}

// EtcdEnv renders EtcdEnvPath, read by the unit. It holds no secret (only
// paths to the keys).
func EtcdEnv(in EtcdInput) ([]byte, error) {
	v, err := in.view()
	if err != nil {
		return nil, err
	}
	return render("etcd.env.tmpl", v)
}
