package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/transport"
)

// Kubeconfig fetches the admin kubeconfig to the state dir (its server is
// the control plane endpoint, the VIP) and, when asked, merges it into the
// user's ~/.kube/config.
type Kubeconfig struct{}

func (*Kubeconfig) Name() string { return "kubeconfig" }
func (*Kubeconfig) Title() string {
	return "Kubeconfig: admin access from the bastion, through the VIP"
}

func (p *Kubeconfig) Check(ctx context.Context, r *engine.Run) error {
	conn, err := r.Connect(ctx, r.Cluster.FirstMaster())
	if err != nil {
		return err
	}
	b, err := conn.Get(ctx, adminConf)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.Load(b)
	if err != nil {
		return fmt.Errorf("parsing %s: %w", adminConf, err)
	}
	want := "https://" + r.Cluster.APIServerEndpoint()
	for name, c := range cfg.Clusters {
		if c.Server != want {
			return engine.Errorf(r.Cluster.FirstMaster().Name, p.Name(), "", "%s: cluster %s points at %s, not the endpoint %s", adminConf, name, c.Server, want)
		}
	}
	if err := r.State.WriteFile(r.State.Kubeconfig(), b, 0o600); err != nil {
		return err
	}
	r.Events.Infof(p.Name(), "", "kubeconfig: %s (server %s)", r.State.Kubeconfig(), want)
	if r.Options.MergeKubeconfig != "" {
		if err := mergeKubeconfig(r.Options.MergeKubeconfig, b); err != nil {
			return err
		}
		r.Events.Infof(p.Name(), "", "merged into %s", r.Options.MergeKubeconfig)
	}
	return nil
}

// mergeKubeconfig adds (or replaces) the cluster's entries in path and makes
// its context current.
func mergeKubeconfig(path string, admin []byte) error {
	in, err := clientcmd.Load(admin)
	if err != nil {
		return err
	}
	out, err := clientcmd.LoadFromFile(path)
	if os.IsNotExist(err) {
		out = clientcmdapi.NewConfig()
	} else if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	for k, v := range in.Clusters {
		out.Clusters[k] = v
	}
	for k, v := range in.AuthInfos {
		out.AuthInfos[k] = v
	}
	for k, v := range in.Contexts {
		out.Contexts[k] = v
	}
	out.CurrentContext = in.CurrentContext
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*out, path)
}

func readLocal(path string) ([]byte, error) { return os.ReadFile(transport.ExpandHome(path)) }
