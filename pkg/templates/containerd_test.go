package templates

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"k4t.io/k4t/pkg/testenv"
)

const defaultContainerd = "/var/cache/k4t/artifacts/containerd-v2.2.9/bin/containerd"

// TestContainerdReadsConfig loads each rendered config.toml with the real
// containerd (when built) via `containerd config dump` and checks that the
// effective config holds k4t's values: a misspelt key would be ignored
// silently and leave the default in its place.
func TestContainerdReadsConfig(t *testing.T) {
	bin := os.Getenv("K4T_CONTAINERD")
	if bin == "" {
		bin = defaultContainerd
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "containerd not built (%s; set K4T_CONTAINERD): run make artifacts", bin)
	}
	inputs := map[string]ContainerdInput{
		"lab": {SandboxImage: "registry.k8s.io/pause:3.10.2", RuncPath: "/usr/local/sbin/runc", RestrictOOMScoreAdj: true},
		"systemd": {SandboxImage: "example.com/pause:9", RuncPath: "/opt/runc", SystemdCgroup: true,
			CNIBinDir: "/opt/k4t/cni", CNIConfDir: "/etc/k4t/cni"},
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			b, err := ContainerdConfig(in)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd := exec.Command(bin, "--config", path, "config", "dump")
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("containerd config dump: %v\n%s", err, stderr.String())
			}
			if s := stderr.String(); strings.Contains(s, "level=warning") || strings.Contains(s, "deprecated") {
				t.Errorf("containerd warns about the config:\n%s", s)
			}
			var dump map[string]any
			if err := toml.Unmarshal(out, &dump); err != nil {
				t.Fatalf("parse dump: %v\n%s", err, out)
			}
			runtime := []string{"plugins", "io.containerd.cri.v1.runtime"}
			runc := append(runtime[:2:2], "containerd", "runtimes", "runc")
			checks := []struct {
				path []string
				want any
			}{
				{[]string{"version"}, int64(3)},
				{[]string{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"}, in.SandboxImage},
				{append(runtime[:2:2], "restrict_oom_score_adj"), in.RestrictOOMScoreAdj},
				{append(runc[:5:5], "runtime_type"), "io.containerd.runc.v2"},
				{append(runc[:5:5], "options", "BinaryName"), in.RuncPath},
				{append(runc[:5:5], "options", "SystemdCgroup"), in.SystemdCgroup},
				{append(runtime[:2:2], "cni", "bin_dirs"), []any{orDefault(in.CNIBinDir, DefaultCNIBinDir)}},
				{append(runtime[:2:2], "cni", "conf_dir"), orDefault(in.CNIConfDir, DefaultCNIConfDir)},
			}
			for _, c := range checks {
				got := lookup(dump, c.path)
				if !equalish(got, c.want) {
					t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), got, c.want)
				}
			}
		})
	}
}

func lookup(m map[string]any, path []string) any {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func equalish(got, want any) bool {
	gs, ok1 := got.([]any)
	ws, ok2 := want.([]any)
	if ok1 && ok2 {
		if len(gs) != len(ws) {
			return false
		}
		for i := range gs {
			if gs[i] != ws[i] {
				return false
			}
		}
		return true
	}
	return got == want
}
