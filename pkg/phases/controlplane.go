package phases

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// ControlPlane runs `kubeadm init` on the first master and `kubeadm join
// --control-plane` on the others, one at a time, each gated on its
// kube-apiserver being ready. The endpoint is the VIP; etcd is k4t's; the
// CAs and the service-account key come from the state dir, so every master
// gets the same ones from k4t and no certificate key is needed.
type ControlPlane struct{}

const (
	kubeadmConfigPath = "/etc/kubernetes/k4t/kubeadm.yaml"
	adminConf         = "/etc/kubernetes/admin.conf"
	initDone          = "/etc/kubernetes/k4t/init.done"
	joinDone          = "/etc/kubernetes/k4t/join.done"
	kubeadmTimeout    = 10 * time.Minute
)

func (*ControlPlane) Name() string { return "control-plane" }
func (*ControlPlane) Title() string {
	return "Control plane: kubeadm init on the first master, joins through the VIP"
}
func (*ControlPlane) Hosts(r *engine.Run) []*v1alpha1.Host { return r.Cluster.Masters() }

// masterPKI lists what every master gets from the state dir.
var masterPKI = []struct{ rel, remote string }{
	{certs.KubernetesCA + ".crt", "/etc/kubernetes/pki/ca.crt"},
	{certs.KubernetesCA + ".key", "/etc/kubernetes/pki/ca.key"},
	{certs.FrontProxyCA + ".crt", "/etc/kubernetes/pki/front-proxy-ca.crt"},
	{certs.FrontProxyCA + ".key", "/etc/kubernetes/pki/front-proxy-ca.key"},
	{certs.SAKey, "/etc/kubernetes/pki/sa.key"},
	{certs.SAPub, "/etc/kubernetes/pki/sa.pub"},
	{certs.EtcdCA + ".crt", templates.KubeadmEtcdCAFile},
	{certs.APIServerEtcd + ".crt", templates.KubeadmEtcdClientCert},
	{certs.APIServerEtcd + ".key", templates.KubeadmEtcdClientKey},
}

func nodeRegistration(r *engine.Run, h *v1alpha1.Host) templates.NodeRegistration {
	return templates.NodeRegistration{
		Name: h.Name, NodeIP: h.InternalAddress, ImagePullPolicy: "Never",
		IgnorePreflightErrors: r.Cluster.Spec.Preflight.IgnoreErrors,
		Schedulable:           len(r.Cluster.Workers()) == 0,
	}
}

func (p *ControlPlane) Plan(ctx context.Context, hc *engine.HostCtx) ([]*engine.Change, error) {
	r := hc.Run
	var out []*engine.Change
	// The certificates and the kubeadm config, planned with one round trip.
	var files []engine.PlannedFile
	for _, f := range masterPKI {
		file, o, err := pkiFile(r, f.rel, f.remote)
		if err != nil {
			return nil, err
		}
		files = append(files, engine.PlannedFile{File: file, Opts: o})
	}
	first := hc.Name() == r.Cluster.FirstMaster().Name
	var cfg []byte
	var err error
	if first {
		cfg, err = initConfig(r, hc.Host)
	} else {
		cfg, err = joinConfig(r, hc.Host, true)
	}
	if err != nil {
		return nil, err
	}
	files = append(files, engine.PlannedFile{File: transport.File{Path: kubeadmConfigPath, Mode: 0o600, Content: cfg}, Opts: engine.FileOpts{Secret: true}})
	fileChanges, err := engine.FileChanges(ctx, hc, p.Name(), files...)
	if err != nil {
		return nil, err
	}
	for _, c := range fileChanges {
		if c != nil {
			out = append(out, c)
		}
	}
	if first {
		kc, err := kubeadmChange(ctx, hc, p.Name(), "kubeadm init", initDone, "kubeadm init --config "+kubeadmConfigPath)
		if err != nil {
			return nil, err
		}
		out = append(out, kc...)
	} else {
		kc, err := kubeadmChange(ctx, hc, p.Name(), "kubeadm join --control-plane", joinDone, "kubeadm join --config "+kubeadmConfigPath)
		if err != nil {
			return nil, err
		}
		out = append(out, kc...)
	}
	return out, nil
}

// kubeadmChange runs a kubeadm init/join unless its done-marker exists. A
// node left half-way by an interrupted run is first undone by a rendered
// script in the same Change, never by `kubeadm reset`: the reset would empty
// the etcd member's data dir and delete the PKI that k4t pushed.
func kubeadmChange(ctx context.Context, hc *engine.HostCtx, phase, desc, marker, cmd string) ([]*engine.Change, error) {
	fi, err := hc.Conn.Stat(ctx, marker)
	if err != nil {
		return nil, err
	}
	if fi.Exists {
		return nil, nil
	}
	worker := !hc.Host.HasRole(v1alpha1.RoleMaster)
	leftovers := "/etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/manifests/kube-apiserver.yaml /var/lib/kubelet/config.yaml"
	if worker { // on a master k4t put the CA there; on a worker only kubeadm join does
		leftovers += " /etc/kubernetes/pki/ca.crt"
	}
	res, err := hc.Conn.Run(ctx, transport.Cmd{Command: "ls " + leftovers + " 2>/dev/null; pgrep -x kubeadm; true", ReadOnly: true})
	if err != nil {
		return nil, err
	}
	var undo []byte
	if strings.TrimSpace(string(res.Stdout)) != "" {
		desc += " (after undoing an earlier attempt that did not finish: kubeadm's manifests, kubeconfigs and kubelet state go; etcd data and k4t's PKI stay)"
		if undo, err = templates.KubeadmUndo(templates.KubeadmUndoInput{NodeName: hc.Name(), Worker: worker}); err != nil {
			return nil, err
		}
	}
	full := cmd + " && touch " + marker
	return []*engine.Change{{Host: hc.Name(), Phase: phase, Kind: engine.KindCommand, Desc: desc, Key: "kubeadm:" + phase,
		Apply: func(ctx context.Context, h transport.Host) error {
			if undo != nil {
				if _, err := h.Run(ctx, transport.Cmd{Command: "sh -s", Stdin: undo, Timeout: 2 * time.Minute}); err != nil {
					return fmt.Errorf("undoing the earlier attempt: %w", err)
				}
			}
			_, err := h.Run(ctx, transport.Cmd{Command: full, Timeout: kubeadmTimeout})
			return err
		}}}, nil
}

func initConfig(r *engine.Run, h *v1alpha1.Host) ([]byte, error) {
	c := r.Cluster
	tok, err := bootstrapToken(r)
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, m := range c.EtcdMembers() {
		eps = append(eps, "https://"+m.InternalAddress+":2379")
	}
	sans := []string{c.Spec.ControlPlaneEndpoint.Address, "127.0.0.1", "localhost"}
	for _, m := range c.Masters() {
		sans = append(sans, m.InternalAddress, m.Name)
		if m.Address != m.InternalAddress {
			sans = append(sans, m.Address)
		}
	}
	k := c.Spec.Kubernetes.Kubelet
	driver := k.CgroupDriver
	if driver == "" {
		driver = "systemd"
	}
	return templates.KubeadmInit(templates.KubeadmInput{
		Node: nodeRegistration(r, h), KubernetesVersion: c.Spec.Kubernetes.Version, ClusterName: c.Metadata.Name,
		ControlPlaneEndpoint: c.APIServerEndpoint(),
		PodSubnet:            c.Spec.Kubernetes.PodCIDR, ServiceSubnet: c.Spec.Kubernetes.ServiceCIDR, DNSDomain: c.Spec.Kubernetes.ClusterDomain,
		EtcdEndpoints: eps, CertSANs: sans, DNSImageTag: dnsImageTag(r),
		BootstrapToken: tok, BootstrapTokenTTL: 24 * time.Hour,
		CertificateValidity: c.Spec.Certificates.Validity.Duration,
		Kubelet: templates.KubeletSettings{CgroupDriver: driver, FailCgroupV1: k.FailCgroupV1, EvictionHard: k.EvictionHard,
			ImageGCHighThresholdPercent: k.ImageGCHighThresholdPercent, ImageGCLowThresholdPercent: k.ImageGCLowThresholdPercent},
		ConntrackMaxPerCore: conntrackMaxPerCore(c.Spec.Kubernetes.KubeProxy.ConntrackMaxPerCore),
	})
}

func conntrackMaxPerCore(n *int) *int32 {
	if n == nil {
		return nil
	}
	v := int32(*n)
	return &v
}

func joinConfig(r *engine.Run, h *v1alpha1.Host, controlPlane bool) ([]byte, error) {
	tok, err := bootstrapToken(r)
	if err != nil {
		return nil, err
	}
	hash, err := caCertHash(r)
	if err != nil {
		return nil, err
	}
	return templates.KubeadmJoin(templates.JoinInput{
		Node: nodeRegistration(r, h), APIServerEndpoint: r.Cluster.APIServerEndpoint(),
		Token: tok, CACertHashes: []string{hash}, ControlPlane: controlPlane,
	})
}

// bootstrapTokenRE is kubeadm's token format, "[a-z0-9]{6}.[a-z0-9]{16}".
var bootstrapTokenRE = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// bootstrapToken is the cluster's join token, kept in the state dir.
func bootstrapToken(r *engine.Run) (string, error) {
	tok, err := bootstrapTokenSecret(r)
	if err != nil {
		return "", err
	}
	if !bootstrapTokenRE.MatchString(tok) {
		return "", engine.Errorf("", "", "delete "+r.State.Path("secrets", "bootstrap-token")+" and re-run: k4t makes a new one",
			"the bootstrap token in the state dir is not of kubeadm's form [a-z0-9]{6}.[a-z0-9]{16}")
	}
	return tok, nil
}

func bootstrapTokenSecret(r *engine.Run) (string, error) {
	return r.State.Secret("bootstrap-token", func() (string, error) {
		const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
		b := make([]byte, 22)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		for i := range b {
			b[i] = chars[int(b[i])%len(chars)]
		}
		return string(b[:6]) + "." + string(b[6:]), nil
	})
}

// caCertHash pins the cluster CA for joins: sha256 of its public key info.
func caCertHash(r *engine.Run) (string, error) {
	b, err := os.ReadFile(filepath.Join(r.State.PKI(), certs.KubernetesCA+".crt"))
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("ca.crt: no PEM block")
	}
	crt, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(crt.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Apply initialises the first master, then joins the others one at a time,
// each gated on its own kube-apiserver being ready.
func (p *ControlPlane) Apply(ctx context.Context, r *engine.Run, plans []*engine.HostPlan) error {
	for i, pl := range plans {
		if len(pl.Changes) == 0 {
			continue
		}
		if i > 0 {
			if err := ensureToken(ctx, r); err != nil {
				return err
			}
		}
		if err := engine.ApplyChanges(ctx, r, pl); err != nil {
			return err
		}
		if err := WaitAPIServerReady(ctx, pl.HostCtx, "https://"+net.JoinHostPort(pl.Host.InternalAddress, "6443"), 3*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// Check asks the API through the control plane endpoint (the VIP).
func (p *ControlPlane) Check(ctx context.Context, r *engine.Run) error {
	first := r.Cluster.FirstMaster()
	conn, err := r.Connect(ctx, first)
	if err != nil {
		return err
	}
	return WaitAPIServerReady(ctx, &engine.HostCtx{Host: first, Conn: conn, Run: r}, "https://"+r.Cluster.APIServerEndpoint(), 2*time.Minute)
}

// ensureToken (re)creates the bootstrap token on the first master when it
// has expired, so joins long after init still work. The token reaches
// kubeadm in a config file fed over stdin (never in argv, never stored).
func ensureToken(ctx context.Context, r *engine.Run) error {
	tok, err := bootstrapToken(r)
	if err != nil {
		return err
	}
	cfg, err := templates.KubeadmToken(tok, 2*time.Hour)
	if err != nil {
		return err
	}
	first := r.Cluster.FirstMaster()
	conn, err := r.Connect(ctx, first)
	if err != nil {
		return err
	}
	res, err := conn.Run(ctx, transport.Cmd{Command: fmt.Sprintf("kubeadm token list --kubeconfig %s -o jsonpath='{.token}{\"\\n\"}' | cut -d. -f1", adminConf), Timeout: time.Minute, ReadOnly: true})
	if err != nil {
		return engine.WrapPhase("control-plane", first.Name, fmt.Errorf("listing bootstrap tokens: %w", err))
	}
	id, _, _ := strings.Cut(tok, ".")
	if slices.Contains(strings.Fields(string(res.Stdout)), id) {
		return nil
	}
	cmd := fmt.Sprintf(`f=$(mktemp) && cat > "$f" && kubeadm token create --kubeconfig %s --config "$f" >/dev/null; rc=$?; rm -f "$f"; exit $rc`, adminConf)
	c := &engine.Change{Host: first.Name, Phase: "control-plane", Kind: engine.KindCommand, Key: "cmd:kubeadm-token",
		Desc: "kubeadm token create (the join token " + id + " is gone or expired)",
		Apply: func(ctx context.Context, h transport.Host) error {
			_, err := h.Run(ctx, transport.Cmd{Command: cmd, Stdin: cfg, Secret: true, Timeout: time.Minute})
			return err
		}}
	return engine.ApplyChange(ctx, r, conn, c)
}
