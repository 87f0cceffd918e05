package templates

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/pmezard/go-difflib/difflib"
	"k4t.io/k4t/pkg/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/* from the current templates")

const goldenDir = "testdata/golden"

func TestGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range goldenCases {
		t.Run(c.file, func(t *testing.T) {
			if seen[c.file] {
				t.Fatalf("golden file %s listed twice", c.file)
			}
			seen[c.file] = true
			got, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.render()
			if err != nil || !bytes.Equal(got, again) {
				t.Fatalf("rendering twice gave different bytes (err %v)", err)
			}
			path := filepath.Join(goldenDir, c.file)
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./pkg/templates -update` to create it)", err)
			}
			if !bytes.Equal(got, want) {
				diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
					A: difflib.SplitLines(string(want)), B: difflib.SplitLines(string(got)),
					FromFile: path, ToFile: "rendered", Context: 3,
				})
				t.Errorf("%s differs from the rendering (run `go test ./pkg/templates -update` if intended):\n%s", path, diff)
			}
		})
	}
	// Every golden file on disk must belong to a case: no stale files.
	if !*update {
		entries, _ := os.ReadDir(goldenDir)
		for _, e := range entries {
			if !seen[e.Name()] {
				t.Errorf("%s/%s has no case in goldenCases: delete it", goldenDir, e.Name())
			}
		}
	}
}

// rendered returns the rendering of the named golden case.
func rendered(t *testing.T, file string) []byte {
	t.Helper()
	for _, c := range goldenCases {
		if c.file == file {
			b, err := c.render()
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			return b
		}
	}
	t.Fatalf("no golden case %s", file)
	return nil
}

func casesWithPrefix(prefix string) []string {
	var out []string
	for _, c := range goldenCases {
		if strings.HasPrefix(c.file, prefix) {
			out = append(out, c.file)
		}
	}
	return out
}

// tool finds a checker binary, or skips.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		testenv.Missing(t, "%s not installed: apt-get install %s", name, name)
	}
	return p
}

func TestHAProxyAcceptsConfig(t *testing.T) {
	bin := tool(t, "haproxy")
	for _, f := range casesWithPrefix("haproxy-") {
		path := filepath.Join(t.TempDir(), "haproxy.cfg")
		if err := os.WriteFile(path, rendered(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("[WARNING]")) {
			t.Errorf("%s: haproxy -c: %v\n%s", f, err, out)
		}
	}
}

func TestKeepalivedAcceptsConfig(t *testing.T) {
	bin := tool(t, "keepalived")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "keepalived -t needs root")
	}
	iface := nonLoopback(t)
	for _, f := range casesWithPrefix("keepalived-") {
		dir := t.TempDir()
		script := filepath.Join(dir, "check_haproxy.sh")
		if err := os.WriteFile(script, rendered(t, "check_haproxy-probe.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		// The config names the real script path and the lab's interface;
		// point them at what exists here so only the syntax is judged.
		conf := strings.ReplaceAll(string(rendered(t, f)), KeepalivedCheckPath, script)
		conf = strings.ReplaceAll(conf, "host0", iface)
		path := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// Exit 0 only when keepalived has nothing to say: a warning (e.g. a
		// rounded interval, ignored authentication) is a failure too.
		out, err := exec.Command(bin, "--config-test", "-f", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("%s: keepalived --config-test: %v\n%s", f, err, out)
		}
	}
}

// nonLoopback names an interface keepalived can run VRRP on, or skips.
func nonLoopback(t *testing.T) string {
	t.Helper()
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 && i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 {
			return i.Name
		}
	}
	t.Skip("no non-loopback interface for keepalived --config-test")
	return ""
}

func TestCheckScriptSyntax(t *testing.T) {
	for _, f := range casesWithPrefix("check_haproxy") {
		b := rendered(t, f)
		if !bytes.HasPrefix(b, []byte("#!/bin/bash\n")) {
			t.Errorf("%s: does not start with #!/bin/bash", f)
		}
		if bytes.Contains(b, []byte("pidof")) && !bytes.Contains(b, []byte("not pidof")) {
			t.Errorf("%s: uses pidof, which fails inside containers", f)
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", f, err, out)
		}
	}
}

// Each hosts.toml is TOML that containerd's hosts loader reads: a server
// and, per mirror, its capabilities and maybe its CA file.
func TestRegistryHostsKeys(t *testing.T) {
	for _, f := range casesWithPrefix("hosts-") {
		var h struct {
			Server string `toml:"server"`
			Host   map[string]struct {
				Capabilities []string `toml:"capabilities"`
				CA           string   `toml:"ca"` // containerd's hosts loader reads a string or a list
			} `toml:"host"`
		}
		dec := toml.NewDecoder(bytes.NewReader(rendered(t, f)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !strings.HasPrefix(h.Server, "https://") || len(h.Host) == 0 {
			t.Errorf("%s: server %q, %d mirror(s)", f, h.Server, len(h.Host))
		}
		for m, c := range h.Host {
			if strings.Join(c.Capabilities, ",") != "pull,resolve" {
				t.Errorf("%s: mirror %s may %v, want pull and resolve only", f, m, c.Capabilities)
			}
		}
	}
	if _, err := RegistryHosts(RegistryHostsInput{Registry: "a/b", Mirrors: []string{"ftp://x"}}); err == nil || !strings.Contains(err.Error(), "registry host") || !strings.Contains(err.Error(), "http(s) URL") {
		t.Errorf("bad input: %v", err)
	}
}

func TestContainerdConfigKeys(t *testing.T) {
	for _, f := range casesWithPrefix("containerd-") {
		if !strings.HasSuffix(f, ".toml") {
			continue
		}
		var cfg struct {
			Version int `toml:"version"`
			Plugins map[string]struct {
				Snapshotter  string            `toml:"snapshotter"`
				PinnedImages map[string]string `toml:"pinned_images"`
				Registry     struct {
					ConfigPath string `toml:"config_path"`
				} `toml:"registry"`
				RestrictOOMScoreAdj *bool `toml:"restrict_oom_score_adj"`
				Containerd          struct {
					DefaultRuntimeName string `toml:"default_runtime_name"`
					Runtimes           map[string]struct {
						RuntimeType string         `toml:"runtime_type"`
						Options     map[string]any `toml:"options"`
					} `toml:"runtimes"`
				} `toml:"containerd"`
				CNI struct {
					BinDirs []string `toml:"bin_dirs"`
					ConfDir string   `toml:"conf_dir"`
				} `toml:"cni"`
			} `toml:"plugins"`
		}
		dec := toml.NewDecoder(bytes.NewReader(rendered(t, f)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			var se *toml.StrictMissingError
			if errors.As(err, &se) {
				t.Errorf("%s: keys this test does not know: %s", f, se.String())
			} else {
				t.Errorf("%s: %v", f, err)
			}
			continue
		}
		images, runtime := cfg.Plugins["io.containerd.cri.v1.images"], cfg.Plugins["io.containerd.cri.v1.runtime"]
		runc := runtime.Containerd.Runtimes["runc"]
		switch {
		case cfg.Version != 3:
			t.Errorf("%s: version = %d, want 3", f, cfg.Version)
		case images.PinnedImages["sandbox"] == "":
			t.Errorf("%s: no pinned sandbox image", f)
		case runtime.RestrictOOMScoreAdj == nil:
			t.Errorf("%s: restrict_oom_score_adj unset", f)
		case runtime.Containerd.DefaultRuntimeName != "runc" || runc.RuntimeType != "io.containerd.runc.v2":
			t.Errorf("%s: runc runtime not the default", f)
		case runc.Options["BinaryName"] == nil || runc.Options["SystemdCgroup"] == nil:
			t.Errorf("%s: runc options lack BinaryName or SystemdCgroup: %v", f, runc.Options)
		case len(runtime.CNI.BinDirs) != 1 || runtime.CNI.ConfDir == "":
			t.Errorf("%s: cni dirs unset", f)
		}
	}
}

func TestBridgeCNIIsJSON(t *testing.T) {
	for _, f := range casesWithPrefix("bridge-") {
		var conf struct {
			CNIVersion string           `json:"cniVersion"`
			Plugins    []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(rendered(t, f), &conf); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(conf.Plugins) != 2 || conf.Plugins[0]["type"] != "bridge" || conf.Plugins[1]["type"] != "portmap" {
			t.Errorf("%s: want plugins bridge, portmap; got %v", f, conf.Plugins)
		}
	}
}

func TestEnvAndSysctlLines(t *testing.T) {
	for _, f := range append(casesWithPrefix("etcd-"), casesWithPrefix("sysctl-")...) {
		for i, line := range strings.Split(string(rendered(t, f)), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" || strings.ContainsAny(k, "\"'") {
				t.Errorf("%s:%d: %q is not KEY=VALUE", f, i+1, line)
			}
		}
	}
}

func TestSystemdUnitsVerify(t *testing.T) {
	bin := tool(t, "systemd-analyze")
	for _, f := range []string{"etcd.service", "containerd.service", "kubelet.service"} {
		dir := t.TempDir()
		path := filepath.Join(dir, f)
		if err := os.WriteFile(path, rendered(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
		if f == "kubelet.service" { // verify reads drop-ins beside the unit
			dropIns := filepath.Join(dir, f+".d")
			if err := os.Mkdir(dropIns, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dropIns, "10-kubeadm.conf"), rendered(t, "10-kubeadm.conf"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(bin, "verify", "--man=no", path).CombinedOutput()
		// Missing binaries (etcd, containerd, kubelet are not installed
		// here) and a machine without systemd as PID 1 are not template
		// errors; unknown keys and bad values are.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "Unknown key") || strings.Contains(line, "Failed to parse") ||
				strings.Contains(line, "Invalid") {
				t.Errorf("%s: systemd-analyze verify: %s (err %v)", f, line, err)
			}
		}
	}
}

// TestSysctlApplies loads each sysctl file with `sysctl -p` inside a
// throwaway network namespace (every key is per-namespace net.*), so the
// machine's own settings are untouched; an unknown key fails.
func TestSysctlApplies(t *testing.T) {
	unshare := tool(t, "unshare")
	sysctl := tool(t, "sysctl")
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, f := range casesWithPrefix("sysctl-") {
		path := filepath.Join(t.TempDir(), f)
		b := rendered(t, f)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(strings.TrimSpace(k), "net.") {
				t.Fatalf("%s: %q is not a net.* key; this test would change the machine", f, k)
			}
		}
		out, err := exec.Command(unshare, "--net", sysctl, "-p", path).CombinedOutput()
		if err != nil {
			t.Errorf("%s: sysctl -p in a new netns: %v\n%s", f, err, out)
		}
	}
}

// The undo script parses, and never does what kubeadm reset does to a
// master: it must leave etcd's data dir and k4t's CAs and keys alone.
func TestUndoKubeadmScript(t *testing.T) {
	b := rendered(t, "undo-kubeadm-master2.sh")
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	if w := rendered(t, "undo-kubeadm-worker1.sh"); !bytes.Contains(w, []byte("rm -f pki/ca.crt")) {
		t.Errorf("a worker's undo leaves the CA certificate kubeadm join wrote, on which the retry fails:\n%s", w)
	}
	var code []byte // the commands, without comments
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			code = append(append(code, l...), '\n')
		}
	}
	for _, bad := range []string{"kubeadm reset", "/var/lib/etcd", "ca.key", "ca.crt", "sa.key", "sa.pub", "front-proxy-ca", "apiserver-etcd-client", "rm -rf /etc/kubernetes"} {
		if bytes.Contains(code, []byte(bad)) {
			t.Errorf("the undo script touches %q", bad)
		}
	}
}

// Every rendered shell script parses with the shell that runs it.
func TestShellScriptsParse(t *testing.T) {
	for _, c := range goldenCases {
		if !strings.HasSuffix(c.file, ".sh") {
			continue
		}
		b := rendered(t, c.file)
		shell := "sh"
		if bytes.HasPrefix(b, []byte("#!/bin/bash\n")) {
			shell = "bash"
		}
		cmd := exec.Command(shell, "-n")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %s -n: %v\n%s", c.file, shell, err, out)
		}
	}
}

// The restore script never deletes a data dir: it moves it aside.
func TestEtcdRestoreKeepsData(t *testing.T) {
	b := string(rendered(t, "restore-etcd-master1.sh"))
	for _, line := range strings.Split(b, "\n") {
		if strings.Contains(line, "rm -rf") && !strings.Contains(line, ".restore-20261201T080000Z") {
			t.Errorf("removes something other than its own scratch dir: %q", line)
		}
	}
	if !strings.Contains(b, "mv /var/lib/etcd \"$aside\"") {
		t.Error("the data dir is not moved aside")
	}
	if _, err := EtcdRestoreScript(EtcdRestoreInput{ID: "a b", Token: "t", Host: "m1", Master: true}); err == nil {
		t.Error("an ID with a space renders")
	}
	if _, err := EtcdRestoreScript(EtcdRestoreInput{ID: "x", Token: "t", Host: "m1"}); err == nil {
		t.Error("a host with nothing to restore renders")
	}
}
