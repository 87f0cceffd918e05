package phases

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestMergeKubeconfig(t *testing.T) {
	admin := clientcmdapi.NewConfig()
	admin.Clusters["lab"] = &clientcmdapi.Cluster{Server: "https://10.77.0.100:6443"}
	admin.AuthInfos["kubernetes-admin"] = &clientcmdapi.AuthInfo{Token: "x"}
	admin.Contexts["kubernetes-admin@lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: "kubernetes-admin"}
	admin.CurrentContext = "kubernetes-admin@lab"
	b, err := clientcmd.Write(*admin)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), ".kube", "config")
	// Into a file that does not exist yet, then into one with other clusters.
	if err := mergeKubeconfig(path, b); err != nil {
		t.Fatal(err)
	}
	other, _ := clientcmd.LoadFromFile(path)
	other.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod:6443"}
	other.CurrentContext = "elsewhere"
	if err := clientcmd.WriteToFile(*other, path); err != nil {
		t.Fatal(err)
	}
	if err := mergeKubeconfig(path, b); err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Clusters["prod"] == nil || got.Clusters["lab"].Server != "https://10.77.0.100:6443" || got.CurrentContext != "kubernetes-admin@lab" {
		t.Fatalf("merged config: clusters %v, current %q", got.Clusters, got.CurrentContext)
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Errorf(".kube mode %v", st.Mode().Perm())
	}
}
