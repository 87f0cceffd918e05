package templates

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k4t.io/k4t/pkg/testenv"
)

const certsGoldenDir = "testdata/golden-certs"

func labCertsJob() CertsJobInput {
	st := "/root/.k4t/clusters/lab"
	return CertsJobInput{Cluster: "lab", Binary: "/usr/local/bin/k4t", StateRoot: "/root/.k4t", Inventory: "/root/hosts.yaml",
		Log: st + "/logs/certs-renew.log", Status: st + "/certs-renew.status.json", Lock: st + "/certs-renew.lock",
		Job: st + "/certs-job.sh", Every: 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour}
}

// TestCertsScheduleGolden: the job script, unit, timer and cron entry, one golden file each
// (`go test ./pkg/templates -update` rewrites them).
func TestCertsScheduleGolden(t *testing.T) {
	in := labCertsJob()
	cases := map[string]func(BastionJob) ([]byte, error){
		"certs-job.sh": BastionJob.Script, "k4t-certs-lab.service": BastionJob.Service, "k4t-certs-lab.timer": BastionJob.Timer, "k4t-certs-lab.cron": BastionJob.Cron,
	}
	fb := CertsFallbackInput{Before: 14 * 24 * time.Hour, Index: 1, Count: 3, Seed: "lab"}
	fallback := map[string]func(CertsFallbackInput) ([]byte, error){
		"certs-fallback.sh": CertsFallbackScript, "k4t-certs-fallback.service": CertsFallbackService, "k4t-certs-fallback-master2.timer": CertsFallbackTimer,
	}
	all := map[string]func() ([]byte, error){}
	for f, fn := range cases {
		all[f] = func() ([]byte, error) { return fn(in.Bastion()) }
	}
	for f, fn := range fallback {
		all[f] = func() ([]byte, error) { return fn(fb) }
	}
	for file, fn := range all {
		t.Run(file, func(t *testing.T) {
			got, err := fn()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(certsGoldenDir, file)
			if *update {
				os.MkdirAll(certsGoldenDir, 0o755)
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./pkg/templates -update`)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the rendering:\n%s", path, got)
			}
		})
	}
}

func TestCertsScheduleRejectsBadInput(t *testing.T) {
	in := labCertsJob()
	in.Inventory = "hosts.yaml"
	in.Log = "/tmp/my log"
	in.Every = time.Second
	_, err := in.Bastion().Timer()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Inventory", "not an absolute path", "Log", "spaces", "Every"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestCronSchedule(t *testing.T) {
	for _, tc := range []struct {
		every time.Duration
		want  string // fields, with M and H standing for the hashed minute and hour
		err   bool
	}{
		{24 * time.Hour, "M H * * *", false},
		{72 * time.Hour, "M H */3 * *", false},
		{time.Hour, "M * * * *", false},
		{6 * time.Hour, "M x-23/6 * * *", false},
		{15 * time.Minute, "x-59/15 * * * *", false},
		{time.Minute, "* * * * *", false},
		{7 * time.Hour, "", true},
		{7 * time.Minute, "", true},
		{36 * time.Hour, "", true},
		{90 * time.Second, "", true},
	} {
		got, err := CronSchedule(tc.every, "lab")
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.every, err)
			continue
		}
		if tc.err {
			continue
		}
		g, w := strings.Fields(got), strings.Fields(tc.want)
		for i := range w {
			switch w[i] {
			case "M", "H":
			default:
				if strings.HasPrefix(w[i], "x") {
					if !strings.HasSuffix(g[i], strings.TrimPrefix(w[i], "x")) {
						t.Errorf("%s: field %d %q, want *%s", tc.every, i, g[i], strings.TrimPrefix(w[i], "x"))
					}
				} else if g[i] != w[i] {
					t.Errorf("%s: %q, want %q", tc.every, got, tc.want)
				}
			}
		}
	}
	a, _ := CronSchedule(24*time.Hour, "lab")
	b, _ := CronSchedule(24*time.Hour, "lab")
	if a != b {
		t.Error("not deterministic")
	}
}

func TestFormatDays(t *testing.T) {
	for d, want := range map[time.Duration]string{30 * 24 * time.Hour: "30d", 36 * time.Hour: "1d12h", 6 * time.Hour: "6h", 90 * time.Minute: "1h30m", 30 * time.Second: "30s", 3 * time.Hour: "3h"} {
		if got := FormatDays(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}

// The job script runs k4t, appends its output to the log and writes the result.
func TestCertsJobRuns(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "k4t")
	os.WriteFile(bin, []byte("#!/bin/sh\necho \"args: $*\"\nexit 3\n"), 0o755)
	in := CertsJobInput{Cluster: "lab", Binary: bin, StateRoot: dir, Inventory: dir + "/hosts.yaml",
		Log: dir + "/renew.log", Status: dir + "/status.json", Lock: dir + "/lock", Job: dir + "/job.sh",
		Every: time.Hour, RenewBefore: 3 * time.Hour}
	job, err := in.Bastion().Script()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(in.Job, job, 0o700)
	err = exec.Command("sh", in.Job).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("job exit: %v", err)
	}
	log, _ := os.ReadFile(in.Log)
	if !strings.Contains(string(log), "args: --state-dir "+dir+" certs renew --if-expiring-within 3h -f "+dir+"/hosts.yaml") || !strings.Contains(string(log), "exit 3") {
		t.Errorf("log:\n%s", log)
	}
	var st struct {
		Start    string `json:"start"`
		ExitCode int    `json:"exitCode"`
	}
	b, _ := os.ReadFile(in.Status)
	if err := json.Unmarshal(b, &st); err != nil || st.ExitCode != 3 || st.Start == "" {
		t.Errorf("status %s: %v", b, err)
	}
}

// The renewal disables servers of this backend by name: it must be the one haproxy.cfg
// renders, with one server per master named after it.
func TestHAProxyBackendName(t *testing.T) {
	cfg := string(rendered(t, "haproxy-ha.cfg"))
	if !strings.Contains(cfg, "\nbackend "+HAProxyBackendName+"\n") || !strings.Contains(cfg, "server master1 ") {
		t.Errorf("haproxy.cfg has no backend %q with server master1:\n%s", HAProxyBackendName, cfg)
	}
}

// systemd-analyze, where present, accepts the unit and timer.
func TestCertsUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "no systemd-analyze: apt-get install systemd")
	}
	dir := t.TempDir()
	in := labCertsJob()
	in.Job = "/bin/true"
	svc, _ := in.Bastion().Service()
	tmr, _ := in.Bastion().Timer()
	os.WriteFile(filepath.Join(dir, "k4t-certs-lab.service"), svc, 0o644)
	os.WriteFile(filepath.Join(dir, "k4t-certs-lab.timer"), tmr, 0o644)
	out, err := exec.Command(sa, "verify", "--man=no", filepath.Join(dir, "k4t-certs-lab.timer"), filepath.Join(dir, "k4t-certs-lab.service")).CombinedOutput()
	if err != nil && strings.Contains(string(out), "k4t-certs") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// Masters' daily fallback runs are spread over the day, never in the same hour.
func TestCertsFallbackStaggered(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		tmr, err := CertsFallbackTimer(CertsFallbackInput{Before: 14 * 24 * time.Hour, Index: i, Count: 3, Seed: "lab"})
		if err != nil {
			t.Fatal(err)
		}
		line := ""
		for _, l := range strings.Split(string(tmr), "\n") {
			if strings.HasPrefix(l, "OnCalendar=") {
				line = l
			}
		}
		hour := strings.Fields(line)[1][:2]
		if seen[hour] {
			t.Errorf("two masters run at hour %s", hour)
		}
		seen[hour] = true
	}
	if _, err := CertsFallbackTimer(CertsFallbackInput{Before: time.Minute, Index: 3, Count: 3}); err == nil {
		t.Error("bad input accepted")
	}
	script, _ := CertsFallbackScript(CertsFallbackInput{Before: 14 * 24 * time.Hour, Index: 0, Count: 1})
	if out, err := exec.Command("sh", "-n", "-c", string(script)).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v %s", err, out)
	}
	if !strings.Contains(string(script), "-checkend 1209600 ") {
		t.Error("threshold not in seconds")
	}
}
