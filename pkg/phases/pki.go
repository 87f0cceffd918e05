package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// PKI makes sure the state dir holds the cluster's CAs, the
// service-account key pair and every etcd member's certificates. It works
// only on the bastion; later phases copy what each host needs.
type PKI struct{}

func (*PKI) Name() string  { return "pki" }
func (*PKI) Title() string { return "PKI: CAs and certificates in the state dir" }

func (p *PKI) Prepare(ctx context.Context, r *engine.Run) error {
	c := r.Cluster
	spec := certs.Spec{
		ClusterName: c.Metadata.Name,
		Validity:    c.Spec.Certificates.Validity.Duration,
		CAValidity:  c.Spec.Certificates.CAValidity.Duration,
	}
	for _, h := range c.EtcdMembers() {
		ips := []string{h.InternalAddress}
		if h.Address != h.InternalAddress {
			ips = append(ips, h.Address)
		}
		spec.EtcdMembers = append(spec.EtcdMembers, certs.Member{Name: h.Name, IPs: ips})
	}
	created, err := certs.Ensure(r.State.PKI(), spec, r.Now())
	if err != nil {
		return fmt.Errorf("issuing certificates in %s: %w", r.State.PKI(), err)
	}
	if len(created) > 0 {
		r.Events.Infof(p.Name(), "", "issued %d certificate/key file(s) in %s", len(created), r.State.PKI())
	}
	return nil
}

// pkiFile returns a file from the state dir's pki/ to put at remote path;
// keys are secret (0600, no diff, no rendered copy).
func pkiFile(r *engine.Run, rel, remote string) (transport.File, engine.FileOpts, error) {
	b, err := os.ReadFile(filepath.Join(r.State.PKI(), rel))
	if err != nil {
		return transport.File{}, engine.FileOpts{}, fmt.Errorf("%v — run the pki phase (k4t apply --only pki)", err)
	}
	secret := filepath.Ext(rel) == ".key"
	mode := os.FileMode(0o644)
	if secret {
		mode = 0o600
	}
	return transport.File{Path: remote, Mode: mode, Content: b}, engine.FileOpts{Secret: secret}, nil
}
