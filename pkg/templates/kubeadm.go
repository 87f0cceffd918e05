package templates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
	kubeadmv1beta4 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	"sigs.k8s.io/yaml"
)

// Paths kubeadm's external etcd client uses; pkg/certs must write the etcd CA
// and the apiserver-etcd-client pair there on every master.
const (
	KubeadmEtcdCAFile     = "/etc/kubernetes/pki/etcd/ca.crt"
	KubeadmEtcdClientCert = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
	KubeadmEtcdClientKey  = "/etc/kubernetes/pki/apiserver-etcd-client.key"
	// DefaultCRISocket is containerd's CRI endpoint.
	DefaultCRISocket = "unix://" + ContainerdSocket
)

// NodeRegistration is how kubeadm registers this node (init and join alike).
type NodeRegistration struct {
	// Name of the Node object: the host name.
	Name string
	// NodeIP is the node's internal address: kubelet's --node-ip and, on a
	// control plane node, kube-apiserver's advertise address.
	NodeIP string
	// CRISocket; default unix:///run/containerd/containerd.sock.
	CRISocket string
	// ImagePullPolicy for kubeadm's control plane images: "Always",
	// "IfNotPresent" or "Never" ("Never" when images are imported offline).
	// Empty keeps kubeadm's default (IfNotPresent).
	ImagePullPolicy string
	// IgnorePreflightErrors are kubeadm preflight check names, e.g.
	// "SystemVerification" on a cgroup v1 host. "all" is refused.
	IgnorePreflightErrors []string
	// Schedulable, on a control plane node, registers it without the
	// node-role.kubernetes.io/control-plane:NoSchedule taint (a cluster
	// without workers). Ignored on workers, which get no taint anyway.
	Schedulable bool
}

// KubeadmInput is the `kubeadm init --config` file of the first master:
// InitConfiguration, ClusterConfiguration, KubeletConfiguration and
// KubeProxyConfiguration. etcd is always external to kubeadm (k4t runs it).
type KubeadmInput struct {
	Node NodeRegistration
	// BindPort of this kube-apiserver; default 6443.
	BindPort int
	// KubernetesVersion, e.g. "v1.37.2".
	KubernetesVersion string
	// ClusterName; empty keeps kubeadm's "kubernetes".
	ClusterName string
	// ControlPlaneEndpoint is "host:port" of the VIP (or the single master),
	// e.g. "10.77.0.100:6443".
	ControlPlaneEndpoint string
	// PodSubnet and ServiceSubnet are CIDRs; DNSDomain defaults to
	// "cluster.local".
	PodSubnet     string
	ServiceSubnet string
	DNSDomain     string
	// EtcdEndpoints are the etcd client URLs, e.g. "https://10.77.0.12:2379".
	EtcdEndpoints []string
	// CertSANs are extra names and IPs in kube-apiserver's certificate: the
	// VIP, every master's address and name.
	CertSANs []string
	// ImageRepository for control plane images; empty keeps kubeadm's
	// (registry.k8s.io).
	ImageRepository string
	// DNSImageTag pins CoreDNS's image tag, e.g. "v1.14.6"; empty keeps
	// kubeadm's default for its version.
	DNSImageTag string
	// BootstrapToken, when set ("abcdef.0123456789abcdef"), is created by
	// init so joins can use a token k4t chose; BootstrapTokenTTL (default
	// kubeadm's 24h) bounds it.
	BootstrapToken    string
	BootstrapTokenTTL time.Duration
	// CertificateValidity of the leaf certificates kubeadm issues (its own
	// default is one year); zero keeps kubeadm's.
	CertificateValidity time.Duration
	// Kubelet is the cluster-wide KubeletConfiguration.
	Kubelet KubeletSettings
	// ConntrackMaxPerCore of kube-proxy; nil keeps its default, 0 leaves
	// the host's nf_conntrack_max alone.
	ConntrackMaxPerCore *int32
}

// KubeletSettings are the KubeletConfiguration fields k4t sets.
type KubeletSettings struct {
	// CgroupDriver is "systemd" or "cgroupfs"; it must match containerd's
	// SystemdCgroup.
	CgroupDriver string
	// FailCgroupV1: nil keeps kubelet's default (refuse cgroup v1 since
	// 1.35); false lets kubelet run on a cgroup v1 host (then kubeadm's
	// SystemVerification preflight must be ignored too).
	FailCgroupV1 *bool
	// EvictionHard thresholds, e.g. {"memory.available": "100Mi",
	// "nodefs.available": "1%"}; empty keeps kubelet's defaults.
	EvictionHard map[string]string
	// ImageGCHighThresholdPercent and ImageGCLowThresholdPercent; zero keeps
	// kubelet's defaults (85, 80). Low must be below high. Offline clusters
	// want them high: an image kubelet deletes cannot be pulled back.
	ImageGCHighThresholdPercent int
	ImageGCLowThresholdPercent  int
}

// JoinInput is the `kubeadm join --config` file of one more master or a
// worker.
type JoinInput struct {
	Node NodeRegistration
	// APIServerEndpoint is "host:port" of the VIP (the control plane
	// endpoint).
	APIServerEndpoint string
	// Token is the bootstrap token, "abcdef.0123456789abcdef".
	Token string
	// CACertHashes pin the cluster CA: "sha256:<hex of the CA's
	// SubjectPublicKeyInfo>". At least one.
	CACertHashes []string
	// ControlPlane makes this node a master; k4t copies the shared
	// certificates itself, so no certificateKey is used.
	ControlPlane bool
	// BindPort of this kube-apiserver on a master; default 6443.
	BindPort int
}

var (
	tokenRE  = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	hashRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	semverRE = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)
	// A DNS-1123 subdomain: what kubeadm accepts as a node name.
	nodeNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func (p *problems) hostPort(field, s string) {
	h, port, err := net.SplitHostPort(s)
	if err != nil || h == "" || port == "" {
		p.add("%s: %q is not host:port", field, s)
		return
	}
	var n int
	if _, err := fmt.Sscanf(port, "%d", &n); err != nil || n < 1 || n > 65535 {
		p.add("%s: %q has no valid port", field, s)
	}
}

func (n NodeRegistration) check(p *problems) {
	if len(n.Name) > 253 || !nodeNameRE.MatchString(n.Name) {
		p.add("Node.Name: %q is not a lowercase DNS name", n.Name)
	}
	p.ip("Node.NodeIP", n.NodeIP)
	if n.CRISocket != "" && !strings.HasPrefix(n.CRISocket, "unix:///") {
		p.add("Node.CRISocket: %q must be a unix:/// URL", n.CRISocket)
	}
	switch corev1.PullPolicy(n.ImagePullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		p.add("Node.ImagePullPolicy: %q is none of Always, IfNotPresent, Never", n.ImagePullPolicy)
	}
	for i, e := range n.IgnorePreflightErrors {
		if strings.EqualFold(e, "all") {
			p.add("Node.IgnorePreflightErrors[%d]: \"all\" is refused: name the checks to ignore", i)
		} else if e == "" || containsSpace(e) || strings.Contains(e, ",") {
			p.add("Node.IgnorePreflightErrors[%d]: %q is not a check name", i, e)
		}
	}
}

// registration builds kubeadm's NodeRegistrationOptions.
func (n NodeRegistration) registration(controlPlane bool) kubeadmv1beta4.NodeRegistrationOptions {
	r := kubeadmv1beta4.NodeRegistrationOptions{
		Name:                  n.Name,
		CRISocket:             orDefault(n.CRISocket, DefaultCRISocket),
		KubeletExtraArgs:      []kubeadmv1beta4.Arg{{Name: "node-ip", Value: n.NodeIP}},
		IgnorePreflightErrors: slices.Clone(n.IgnorePreflightErrors),
		ImagePullPolicy:       corev1.PullPolicy(n.ImagePullPolicy),
	}
	if controlPlane && n.Schedulable {
		r.Taints = []corev1.Taint{} // empty, not nil: "no taints"
	}
	return r
}

func (k KubeletSettings) check(p *problems) {
	if k.CgroupDriver != "systemd" && k.CgroupDriver != "cgroupfs" {
		p.add("Kubelet.CgroupDriver: %q is neither \"systemd\" nor \"cgroupfs\"", k.CgroupDriver)
	}
	hi, lo := k.ImageGCHighThresholdPercent, k.ImageGCLowThresholdPercent
	if hi < 0 || hi > 100 || lo < 0 || lo > 100 {
		p.add("Kubelet.ImageGC thresholds must be 0-100 (got high %d, low %d)", hi, lo)
	}
	if hi != 0 && lo != 0 && lo >= hi {
		p.add("Kubelet.ImageGCLowThresholdPercent (%d) must be below ImageGCHighThresholdPercent (%d)", lo, hi)
	}
	for key, v := range k.EvictionHard {
		if key == "" || v == "" || containsSpace(key+v) {
			p.add("Kubelet.EvictionHard: %q=%q is not a signal and a threshold", key, v)
		}
	}
}

func typeMeta(gv schema.GroupVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
}

// KubeadmInit renders the kubeadm init config, a multi-document YAML.
func KubeadmInit(in KubeadmInput) ([]byte, error) {
	p := problems{what: "kubeadm init config"}
	in.Node.check(&p)
	bindPort := orDefault(in.BindPort, DefaultAPIServerPort)
	p.port("BindPort", bindPort)
	if !semverRE.MatchString(in.KubernetesVersion) {
		p.add("KubernetesVersion: %q is not like v1.37.2", in.KubernetesVersion)
	}
	if in.ClusterName != "" && !nodeNameRE.MatchString(in.ClusterName) {
		p.add("ClusterName: %q is not a lowercase DNS name", in.ClusterName)
	}
	p.hostPort("ControlPlaneEndpoint", in.ControlPlaneEndpoint)
	p.prefix("PodSubnet", in.PodSubnet)
	p.prefix("ServiceSubnet", in.ServiceSubnet)
	dnsDomain := orDefault(in.DNSDomain, "cluster.local")
	if !nodeNameRE.MatchString(dnsDomain) {
		p.add("DNSDomain: %q is not a DNS domain", dnsDomain)
	}
	if len(in.EtcdEndpoints) == 0 {
		p.add("EtcdEndpoints: need at least one etcd client URL")
	}
	for i, e := range in.EtcdEndpoints {
		if !strings.HasPrefix(e, "https://") {
			p.add("EtcdEndpoints[%d]: %q must be an https:// URL", i, e)
		} else {
			p.hostPort("EtcdEndpoints["+itoa(i)+"]", strings.TrimPrefix(e, "https://"))
		}
	}
	for i, s := range in.CertSANs {
		if _, err := netip.ParseAddr(s); err != nil && !nodeNameRE.MatchString(s) {
			p.add("CertSANs[%d]: %q is neither an IP nor a DNS name", i, s)
		}
	}
	if in.DNSImageTag != "" && containsSpace(in.DNSImageTag) {
		p.add("DNSImageTag: %q holds spaces", in.DNSImageTag)
	}
	if in.BootstrapToken != "" && !tokenRE.MatchString(in.BootstrapToken) {
		p.add("BootstrapToken: not of the form [a-z0-9]{6}.[a-z0-9]{16}")
	}
	if in.CertificateValidity < 0 {
		p.add("CertificateValidity: %s is negative", in.CertificateValidity)
	}
	if in.BootstrapTokenTTL < 0 {
		p.add("BootstrapTokenTTL: %s is negative", in.BootstrapTokenTTL)
	}
	in.Kubelet.check(&p)
	if err := p.err(); err != nil {
		return nil, err
	}

	initCfg := kubeadmv1beta4.InitConfiguration{
		TypeMeta:         typeMeta(kubeadmv1beta4.SchemeGroupVersion, "InitConfiguration"),
		NodeRegistration: in.Node.registration(true),
		LocalAPIEndpoint: kubeadmv1beta4.APIEndpoint{AdvertiseAddress: in.Node.NodeIP, BindPort: int32(bindPort)},
	}
	if in.BootstrapToken != "" {
		bt, err := bootstrapTokenObj(in.BootstrapToken, in.BootstrapTokenTTL)
		if err != nil {
			return nil, err
		}
		initCfg.BootstrapTokens = []bootstraptokenv1.BootstrapToken{bt}
	}

	clusterCfg := kubeadmv1beta4.ClusterConfiguration{
		TypeMeta:             typeMeta(kubeadmv1beta4.SchemeGroupVersion, "ClusterConfiguration"),
		ClusterName:          in.ClusterName,
		KubernetesVersion:    in.KubernetesVersion,
		ControlPlaneEndpoint: in.ControlPlaneEndpoint,
		ImageRepository:      in.ImageRepository,
		Networking: kubeadmv1beta4.Networking{
			PodSubnet:     in.PodSubnet,
			ServiceSubnet: in.ServiceSubnet,
			DNSDomain:     dnsDomain,
		},
		Etcd: kubeadmv1beta4.Etcd{External: &kubeadmv1beta4.ExternalEtcd{
			Endpoints: slices.Clone(in.EtcdEndpoints),
			CAFile:    KubeadmEtcdCAFile,
			CertFile:  KubeadmEtcdClientCert,
			KeyFile:   KubeadmEtcdClientKey,
		}},
		CertificateValidityPeriod: validityPeriod(in.CertificateValidity),
		APIServer:                 kubeadmv1beta4.APIServer{CertSANs: slices.Clone(in.CertSANs)},
		DNS:                       kubeadmv1beta4.DNS{ImageMeta: kubeadmv1beta4.ImageMeta{ImageTag: in.DNSImageTag}},
	}

	kubeletCfg := kubeletv1beta1.KubeletConfiguration{
		TypeMeta:     typeMeta(kubeletv1beta1.SchemeGroupVersion, "KubeletConfiguration"),
		CgroupDriver: in.Kubelet.CgroupDriver,
		EvictionHard: in.Kubelet.EvictionHard,
		FailCgroupV1: in.Kubelet.FailCgroupV1,
	}
	if v := in.Kubelet.ImageGCHighThresholdPercent; v != 0 {
		kubeletCfg.ImageGCHighThresholdPercent = ptr(int32(v))
	}
	if v := in.Kubelet.ImageGCLowThresholdPercent; v != 0 {
		kubeletCfg.ImageGCLowThresholdPercent = ptr(int32(v))
	}

	proxyCfg := kubeproxyv1alpha1.KubeProxyConfiguration{
		TypeMeta:    typeMeta(kubeproxyv1alpha1.SchemeGroupVersion, "KubeProxyConfiguration"),
		Mode:        "iptables", // IPVS is not assumed to exist on nodes
		ClusterCIDR: in.PodSubnet,
		Conntrack:   kubeproxyv1alpha1.KubeProxyConntrackConfiguration{MaxPerCore: in.ConntrackMaxPerCore},
	}
	return marshalDocs("kubeadm init config", initCfg, clusterCfg, kubeletCfg, proxyCfg)
}

// KubeadmJoin renders the kubeadm join config (a JoinConfiguration).
func KubeadmJoin(in JoinInput) ([]byte, error) {
	p := problems{what: "kubeadm join config"}
	in.Node.check(&p)
	p.hostPort("APIServerEndpoint", in.APIServerEndpoint)
	if !tokenRE.MatchString(in.Token) {
		p.add("Token: not of the form [a-z0-9]{6}.[a-z0-9]{16}")
	}
	if len(in.CACertHashes) == 0 {
		p.add("CACertHashes: need at least one sha256:<hex> pin of the cluster CA")
	}
	for i, h := range in.CACertHashes {
		if !hashRE.MatchString(h) {
			p.add("CACertHashes[%d]: %q is not sha256:<64 lowercase hex>", i, h)
		}
	}
	bindPort := orDefault(in.BindPort, DefaultAPIServerPort)
	p.port("BindPort", bindPort)
	if err := p.err(); err != nil {
		return nil, err
	}
	join := kubeadmv1beta4.JoinConfiguration{
		TypeMeta:         typeMeta(kubeadmv1beta4.SchemeGroupVersion, "JoinConfiguration"),
		NodeRegistration: in.Node.registration(in.ControlPlane),
		Discovery: kubeadmv1beta4.Discovery{
			BootstrapToken: &kubeadmv1beta4.BootstrapTokenDiscovery{
				Token:             in.Token,
				APIServerEndpoint: in.APIServerEndpoint,
				CACertHashes:      slices.Clone(in.CACertHashes),
			},
		},
	}
	if in.ControlPlane {
		join.ControlPlane = &kubeadmv1beta4.JoinControlPlane{
			LocalAPIEndpoint: kubeadmv1beta4.APIEndpoint{AdvertiseAddress: in.Node.NodeIP, BindPort: int32(bindPort)},
		}
	}
	return marshalDocs("kubeadm join config", join)
}

// marshalDocs writes each object as one YAML document, in order. Fields
// equal to their type's zero value are left out (the versioned types marshal
// many non-omitempty fields such as "cacheTTL: 0s"), so a file shows what k4t
// chose and nothing else; pointer fields that are set (failCgroupV1: false)
// and empty-but-present lists (taints: []) stay.
func marshalDocs(what string, objs ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Managed by k4t: edits are overwritten on the next apply.\n")
	for i, o := range objs {
		y, err := marshalSet(o)
		if err != nil {
			return nil, fmt.Errorf("%s: marshal document %d: %w", what, i, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

// marshalSet marshals o to YAML without the fields that equal those of a zero
// value of o's type.
func marshalSet(o any) ([]byte, error) {
	set, err := toGeneric(o)
	if err != nil {
		return nil, err
	}
	zero, err := toGeneric(reflect.New(reflect.TypeOf(o)).Elem().Interface())
	if err != nil {
		return nil, err
	}
	pruned, _ := pruneZero(set, zero, false)
	return yaml.Marshal(pruned)
}

// toGeneric round-trips o through JSON into maps, slices and scalars.
func toGeneric(o any) (any, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var g any
	err = json.Unmarshal(j, &g)
	return g, err
}

// pruneZero drops from v whatever equals zero (the same path in the zero
// value's encoding); inZero says zero holds this path at all. It reports
// whether anything of v is left to keep.
func pruneZero(v, zero any, inZero bool) (any, bool) {
	m, isMap := v.(map[string]any)
	if !isMap {
		return v, !inZero || !reflect.DeepEqual(v, zero)
	}
	zm, _ := zero.(map[string]any)
	out := map[string]any{}
	for k, child := range m {
		zc, ok := zm[k]
		if kept, keep := pruneZero(child, zc, ok); keep {
			out[k] = kept
		}
	}
	return out, len(out) > 0 || !inZero
}

func ptr[T any](v T) *T { return &v }

func validityPeriod(d time.Duration) *metav1.Duration {
	if d <= 0 {
		return nil
	}
	return &metav1.Duration{Duration: d}
}

// KubeadmUndoInput is the script that undoes a kubeadm init/join which did
// not finish, so the command can run again on the same node.
type KubeadmUndoInput struct {
	// NodeName is the node's name in Kubernetes.
	NodeName string
	// Dir is kubeadm's directory; default /etc/kubernetes.
	Dir string
	// Worker: the node joins as a worker, so kubeadm, not k4t, wrote its
	// pki/ca.crt, which goes too.
	Worker bool
}

// KubeadmUndo renders the undo script, run with `sh -s` (never stored on the
// host). Unlike `kubeadm reset` it leaves etcd's data dir and k4t's PKI alone.
func KubeadmUndo(in KubeadmUndoInput) ([]byte, error) {
	p := problems{what: "kubeadm-undo.sh"}
	p.name("NodeName", in.NodeName)
	in.Dir = orDefault(in.Dir, "/etc/kubernetes")
	p.absPath("Dir", in.Dir)
	if containsSpace(in.Dir) {
		p.add("Dir: %q may not hold spaces", in.Dir)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return render("kubeadm-undo.sh.tmpl", struct {
		NodeName, Dir, Crictl string
		Worker                bool
	}{in.NodeName, in.Dir, "crictl --runtime-endpoint unix://" + ContainerdSocket, in.Worker})
}

func bootstrapTokenObj(token string, ttl time.Duration) (bootstraptokenv1.BootstrapToken, error) {
	tok, err := bootstraptokenv1.NewBootstrapTokenString(token)
	if err != nil { // its message holds the token: do not wrap it
		return bootstraptokenv1.BootstrapToken{}, errors.New("kubeadm config: BootstrapToken: not a bootstrap token")
	}
	bt := bootstraptokenv1.BootstrapToken{
		Token:       tok,
		Description: "created by k4t for kubeadm join",
		Usages:      []string{"signing", "authentication"},
		Groups:      []string{"system:bootstrappers:kubeadm:default-node-token"},
	}
	if ttl > 0 {
		bt.TTL = &metav1.Duration{Duration: ttl}
	}
	return bt, nil
}

// KubeadmToken renders the config that `kubeadm token create --config`
// reads, so the token reaches kubeadm in a file (0600, fed over stdin)
// instead of its argv. It holds a secret.
func KubeadmToken(token string, ttl time.Duration) ([]byte, error) {
	if ttl <= 0 {
		return nil, errors.New("kubeadm token config: TTL must be positive")
	}
	bt, err := bootstrapTokenObj(token, ttl)
	if err != nil {
		return nil, err
	}
	return marshalDocs("kubeadm token config", kubeadmv1beta4.InitConfiguration{
		TypeMeta:        typeMeta(kubeadmv1beta4.SchemeGroupVersion, "InitConfiguration"),
		BootstrapTokens: []bootstraptokenv1.BootstrapToken{bt},
	})
}

// KubeadmUpgradeInput is what `kubeadm upgrade apply|node --config` needs.
type KubeadmUpgradeInput struct {
	// KubernetesVersion is the target, e.g. "v1.37.2".
	KubernetesVersion string
	// IgnorePreflightErrors are the inventory's; never "all".
	IgnorePreflightErrors []string
}

// KubeadmUpgrade renders the UpgradeConfiguration of `kubeadm upgrade apply`
// (first master) and `kubeadm upgrade node` (the others). etcd is k4t's, so
// kubeadm leaves it alone; images are imported offline, so nothing is
// pulled; certificates are k4t's to renew (`k4t certs renew`), so kubeadm
// does not renew them behind k4t's back.
func KubeadmUpgrade(in KubeadmUpgradeInput) ([]byte, error) {
	p := problems{what: "kubeadm upgrade config"}
	if !semverRE.MatchString(in.KubernetesVersion) {
		p.add("KubernetesVersion: %q is not like v1.37.2", in.KubernetesVersion)
	}
	if slices.Contains(in.IgnorePreflightErrors, "all") {
		p.add("IgnorePreflightErrors: \"all\" would hide every check; name the checks")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	no := new(bool)
	return marshalDocs("kubeadm upgrade config", kubeadmv1beta4.UpgradeConfiguration{
		TypeMeta: typeMeta(kubeadmv1beta4.SchemeGroupVersion, "UpgradeConfiguration"),
		Apply: kubeadmv1beta4.UpgradeApplyConfiguration{
			KubernetesVersion: in.KubernetesVersion, CertificateRenewal: no, EtcdUpgrade: no,
			IgnorePreflightErrors: in.IgnorePreflightErrors, ImagePullPolicy: corev1.PullNever,
		},
		Node: kubeadmv1beta4.UpgradeNodeConfiguration{
			CertificateRenewal: no, EtcdUpgrade: no,
			IgnorePreflightErrors: in.IgnorePreflightErrors, ImagePullPolicy: corev1.PullNever,
		},
	})
}
