//go:build kubeadmcheck

// Cross-check with kubeadm's own code (k8s.io/kubernetes v1.37.2): kubeadm takes our CAs and
// sa key pair as pre-provided, signs its leaves and kubeconfigs with them, and renews them.
// The kubeadm packages need requires that go.mod does not list; run it in a copy of the
// module so the shared go.mod stays as it is:
//
//	cp -r . /tmp/k4t-copy && cd /tmp/k4t-copy && go test -mod=mod -tags kubeadmcheck -run Kubeadm -v ./pkg/certs
package certs_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	certsphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/certs"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/certs/renewal"
	kubeconfigphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/kubeconfig"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"

	"k4t.io/k4t/pkg/certs"
)

func TestKubeadmAcceptsOurPKI(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pki")
	spec := certs.Spec{ClusterName: "lab", EtcdMembers: []certs.Member{{Name: "m1", IPs: []string{"10.77.0.11"}}}}
	if _, err := certs.Ensure(dir, spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	keep := []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"}
	before := map[string][]byte{}
	for _, f := range keep {
		before[f], _ = os.ReadFile(filepath.Join(dir, f))
	}
	cfg, err := configutil.DefaultedStaticInitConfiguration()
	if err != nil {
		t.Fatal(err)
	}
	cfg.CertificatesDir = dir
	cfg.Etcd.Local = nil
	cfg.Etcd.External = &kubeadmapi.ExternalEtcd{Endpoints: []string{"https://10.77.0.11:2379"},
		CAFile: filepath.Join(dir, "etcd/ca.crt"), CertFile: filepath.Join(dir, "apiserver-etcd-client.crt"), KeyFile: filepath.Join(dir, "apiserver-etcd-client.key")}
	cfg.NodeRegistration.Name = "m1"
	cfg.LocalAPIEndpoint.AdvertiseAddress = "10.77.0.11"
	cfg.ControlPlaneEndpoint = "10.77.0.10:6443"
	if ext, err := certsphase.UsingExternalCA(&cfg.ClusterConfiguration); err != nil || ext {
		t.Fatalf("UsingExternalCA: %v %v", ext, err)
	}
	if err := certsphase.CreatePKIAssets(cfg); err != nil {
		t.Fatalf("kubeadm CreatePKIAssets with our CAs: %v", err)
	}
	for _, f := range keep {
		now, _ := os.ReadFile(filepath.Join(dir, f))
		if !bytes.Equal(now, before[f]) {
			t.Errorf("kubeadm rewrote %s", f)
		}
	}
	ca, _, err := certs.Load(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, f := range []string{"apiserver", "apiserver-kubelet-client"} {
		c, _, err := certs.Load(dir, f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		t.Logf("kubeadm made %s: %s, key %T", f, c.Subject, c.PublicKey)
	}
	kdir := root
	if err := kubeconfigphase.CreateJoinControlPlaneKubeConfigFiles(kdir, cfg); err != nil {
		t.Fatalf("kubeadm kubeconfigs with our CA: %v", err)
	}
	adm, _ := os.ReadFile(filepath.Join(kdir, "admin.conf"))
	infos, err := certs.InfoFromKubeconfig("admin.conf", adm)
	if err != nil || len(infos) != 2 {
		t.Fatalf("admin.conf: %v %+v", err, infos)
	}
	t.Logf("admin.conf: %+v", infos[0])
	rm, err := renewal.NewManager(&cfg.ClusterConfiguration, kdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range rm.Certificates() {
		if exists, _ := rm.CertificateExists(h.Name); !exists {
			continue // super-admin.conf: written by kubeadm init only
		}
		ok, err := rm.RenewUsingLocalCA(h.Name)
		t.Logf("kubeadm renew %s: %v %v", h.Name, ok, err)
		if err != nil || !ok {
			t.Errorf("kubeadm renew %s: %v %v", h.Name, ok, err)
		}
	}
	for _, h := range rm.CAs() {
		info, err := rm.GetCAExpirationInfo(h.Name)
		if err != nil {
			t.Errorf("kubeadm CA %s: %v", h.Name, err)
			continue
		}
		ext, _ := rm.IsExternallyManaged(h.FileName)
		t.Logf("kubeadm CA %s expires %s external=%v", h.Name, info.ExpirationDate, ext)
	}
	rows, err := certs.CheckDir(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Err != "" {
			t.Errorf("%s: %s", r.Name, r.Err)
		}
		t.Logf("%-34s CA=%-20s left=%s err=%q", r.Name, r.CA, r.Left.Round(time.Hour), r.Err)
	}
}
