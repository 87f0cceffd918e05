package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// CA names `k4t certs renew-ca` accepts, and their files in the state dir.
var caNames = map[string]string{
	"ca":             certs.KubernetesCA,
	"front-proxy-ca": certs.FrontProxyCA,
	"etcd-ca":        certs.EtcdCA,
}

// CANames lists the names RenewCAs accepts.
func CANames() []string { return []string{"ca", "front-proxy-ca", "etcd-ca"} }

// caTargets says where each CA's certificate lives on a host.
func caTargets(c *v1alpha1.Cluster, h *v1alpha1.Host, name string) []string {
	master := h.HasRole(v1alpha1.RoleMaster)
	node := master || h.HasRole(v1alpha1.RoleWorker)
	var out []string
	switch name {
	case "ca":
		if node {
			out = append(out, kubePKI+"/ca.crt")
		}
	case "front-proxy-ca":
		if master {
			out = append(out, kubePKI+"/front-proxy-ca.crt")
		}
	case "etcd-ca":
		if master {
			out = append(out, templates.KubeadmEtcdCAFile)
		}
		if isMember(c, h) {
			out = append(out, templates.EtcdCAFile)
		}
	}
	return out
}

// RenewCAs extends the named CAs' validity in the state dir, keeping their keys and
// subjects (so every certificate they signed still verifies), then writes the new CA
// certificates to every host that holds them and the new cluster CA into each node's
// kubelet.conf. Components read their CA files at start: the caller restarts them with a
// renewal roll (pkg/action CertsRenew), one master at a time. validity <= 0 keeps each CA's length.
func RenewCAs(ctx context.Context, r *engine.Run, names []string, validity time.Duration) error {
	if len(names) == 0 || slices.Contains(names, "all") {
		names = CANames()
	}
	for _, n := range names {
		if _, ok := caNames[n]; !ok {
			return fmt.Errorf("unknown CA %q (known: all, %s)", n, strings.Join(CANames(), ", "))
		}
	}
	for _, n := range names {
		rel := caNames[n] + ".crt"
		if err := certs.RenewCA(r.State.PKI(), rel, validity); err != nil {
			return engine.Errorf("", certsPhase, "restore the CA's key from a backup of the state dir", "renewing %s: %v", rel, err)
		}
		r.Events.Infof(certsPhase, "", "renewed %s in %s (key kept)", rel, r.State.PKI())
	}
	newCA, err := os.ReadFile(filepath.Join(r.State.PKI(), certs.KubernetesCA+".crt"))
	if err != nil {
		return err
	}
	return engine.OnHosts(ctx, r, certsPhase, engine.AllHosts(r), func(ctx context.Context, hc *engine.HostCtx) error {
		for _, n := range names {
			for _, remote := range caTargets(r.Cluster, hc.Host, n) {
				file, o, err := pkiFile(r, caNames[n]+".crt", remote)
				if err != nil {
					return err
				}
				c, err := engine.FileChange(ctx, hc, certsPhase, file, o)
				if err != nil {
					return err
				}
				if c != nil {
					if err := engine.ApplyChange(ctx, r, hc.Conn, c); err != nil {
						return err
					}
				}
			}
		}
		if slices.Contains(names, "ca") && (hc.Host.HasRole(v1alpha1.RoleMaster) || hc.Host.HasRole(v1alpha1.RoleWorker)) {
			return updateKubeconfigCA(ctx, hc, kubeletConf, newCA)
		}
		return nil
	})
}

// updateKubeconfigCA sets every cluster's certificate-authority-data of a kubeconfig on
// the host to ca.
func updateKubeconfigCA(ctx context.Context, hc *engine.HostCtx, path string, ca []byte) error {
	b, err := hc.Conn.Get(ctx, path)
	if err != nil {
		return fmt.Errorf("reading %s: %w — has the node joined? run `k4t apply`", path, err)
	}
	cfg, err := clientcmd.Load(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range cfg.Clusters {
		c.CertificateAuthorityData = ca
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	c, err := engine.FileChange(ctx, hc, certsPhase, transport.File{Path: path, Mode: 0o600, Content: out}, engine.FileOpts{Secret: true})
	if err != nil || c == nil {
		return err
	}
	return engine.ApplyChange(ctx, hc.Run, hc.Conn, c)
}
