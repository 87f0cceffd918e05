package phases

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k4t.io/k4t/pkg/artifacts"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/testenv"
)

// The real kubeadm judges the configs the real builders make from the
// example inventories (HA, lightweight, external etcd): init on the first
// master, control-plane joins, worker joins. Missing kubeadm: skip locally,
// fail in CI.
func TestKubeadmValidatesBuiltConfigs(t *testing.T) {
	bin := os.Getenv("K4T_KUBEADM")
	if bin == "" {
		bin = "/var/cache/k4t/artifacts/v1.37.2/bin/kubeadm"
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "kubeadm not built: run make artifacts (%v)", err)
	}
	for _, inv := range []string{"ha.yaml", "lightweight.yaml", "external-etcd.yaml"} {
		t.Run(inv, func(t *testing.T) {
			c, st := loadExample(t, inv)
			r := &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("test"),
				Options: engine.Options{Artifacts: artifacts.NewStore(&artifacts.Manifest{}, "")}}
			if err := (&PKI{}).Prepare(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			configs := map[string][]byte{}
			var err error
			for i, m := range c.Masters() {
				var b []byte
				if i == 0 {
					b, err = initConfig(r, m)
				} else {
					b, err = joinConfig(r, m, true)
				}
				if err != nil {
					t.Fatalf("%s: %v", m.Name, err)
				}
				configs[m.Name] = b
			}
			for _, w := range c.Workers() {
				if configs[w.Name], err = joinConfig(r, w, false); err != nil {
					t.Fatalf("%s: %v", w.Name, err)
				}
			}
			for host, b := range configs {
				p := filepath.Join(t.TempDir(), host+".yaml")
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(bin, "config", "validate", "--config", p).CombinedOutput(); err != nil {
					t.Errorf("%s: kubeadm config validate: %v\n%s", host, err, out)
				}
			}
			t.Logf("%d config(s) validated by %s", len(configs), bin)
		})
	}
}
