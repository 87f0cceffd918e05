package status

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

const masterOut = `time 1796119200.150000000
uptime 86400.5
load 0.52 2
cpu_busy 12.5
mem_kb 4000000 3000000
disk / 42 10000000
disk /var/lib/etcd 42 10000000
unit etcd active
unit containerd active
unit kubelet active
etcd_status [{"Endpoint":"https://10.77.0.13:2379","Status":{"header":{"member_id":7,"revision":90},"leader":7,"dbSize":1724448}}]
etcd_health [{"endpoint":"https://10.77.0.13:2379","health":true,"took":"2ms"}]
etcd_alarms 
snapshot scheduled-master1-20261201T090000Z.db
readyz ok
cert Nov 30 12:00:00 2027 GMT | /etc/kubernetes/pki/apiserver.crt
cert Dec 20 12:00:00 2026 GMT | /etc/etcd/pki/server.crt
time_end 1796119204.150000000
`

func parsed(out string) *Host {
	h := &Host{Name: "master1", Roles: []string{"master"}, Reachable: true}
	h.Parse(out, now, 4100*time.Millisecond, now) // the script ran 4 s of it
	return h
}

func TestParse(t *testing.T) {
	h := parsed(masterOut)
	if h.ClockOffset != 100*time.Millisecond || h.ClockUncertainty != 50*time.Millisecond { // 150 ms after sending, less half the 100 ms the transport took
		t.Errorf("clock offset %s ± %s", h.ClockOffset, h.ClockUncertainty)
	}
	// A slow login (a sudo prompt) widens the uncertainty: 2.6 s off, give
	// or take 2.5 s, is no skew past a 2 s threshold; 5 s is.
	slow := &Report{Hosts: []*Host{{Name: "worker2", Reachable: true, ClockOffset: 2600 * time.Millisecond, ClockUncertainty: 2500 * time.Millisecond},
		{Name: "worker3", Reachable: true, ClockOffset: -5 * time.Second, ClockUncertainty: 100 * time.Millisecond}}}
	slow.Judge(Thresholds{ClockSkew: 2 * time.Second})
	if strings.Contains(slow.Verdict, "worker2") || !strings.Contains(slow.Verdict, "worker3 clock off by -5s (±100ms)") {
		t.Errorf("verdict %q", slow.Verdict)
	}
	// Without a last reading, only the 0.2 s CPU sample counts as the script's.
	var old Host
	old.Parse("time 1796119200.150000000\n", now, 300*time.Millisecond, now)
	if old.ClockOffset != 100*time.Millisecond {
		t.Errorf("clock offset without time_end: %s", old.ClockOffset)
	}
	if h.Uptime != 86401*time.Second || h.Load1 != 0.52 || h.CPUs != 2 || h.CPUBusy != 12.5 {
		t.Errorf("uptime %s load %v/%d cpu %v", h.Uptime, h.Load1, h.CPUs, h.CPUBusy)
	}
	if h.MemTotal != 4000000<<10 || h.MemAvail != 3000000<<10 || len(h.Disks) != 2 || h.Disks[0].UsedPct != 42 {
		t.Errorf("mem %d/%d disks %+v", h.MemAvail, h.MemTotal, h.Disks)
	}
	if h.Etcd == nil || !h.Etcd.Healthy || !h.Etcd.Leader || h.Etcd.DBSize != 1724448 || len(h.Etcd.Alarms) != 0 {
		t.Errorf("etcd %+v", h.Etcd)
	}
	if h.Readyz != "ok" || h.Units["kubelet"] != "active" || h.SnapshotAge != time.Hour {
		t.Errorf("readyz %q units %v snapshot age %s", h.Readyz, h.Units, h.SnapshotAge)
	}
	if h.CertFile != "/etc/etcd/pki/server.crt" || h.CertExpiry.Format("2006-01-02") != "2026-12-20" {
		t.Errorf("soonest cert %s %s", h.CertFile, h.CertExpiry)
	}
}

// The verdict names every problem: an unreachable host, a stopped unit, a
// full disk, an unhealthy member, a failed /readyz, a NotReady node, a
// certificate within the threshold, the VIP on both slb hosts.
func TestJudge(t *testing.T) {
	m1 := parsed(masterOut)
	m1.Node = &Node{Ready: true, KubeletVersion: "v1.37.2"}
	healthy := &Report{Cluster: "lab", Time: now, Hosts: []*Host{m1}}
	healthy.Judge(Thresholds{DiskPercent: 90, MemAvailPercent: 10, CertWithin: 7 * 24 * time.Hour, ClockSkew: 2 * time.Second})
	if !healthy.Healthy || healthy.Verdict != "healthy" {
		t.Fatalf("verdict %q", healthy.Verdict)
	}
	bad := parsed(strings.NewReplacer("unit etcd active", "unit etcd failed", "disk / 42", "disk / 93",
		`"health":true`, `"health":false`, "readyz ok", "readyz failed").Replace(masterOut))
	bad.Name, bad.Node = "master2", &Node{Ready: false}
	slb1 := &Host{Name: "slb1", Roles: []string{"slb"}, Reachable: true, HoldsVIP: true, Backends: map[string]string{"master1": "UP", "master2": "DOWN"}}
	slb2 := &Host{Name: "slb2", Roles: []string{"slb"}, Reachable: true, HoldsVIP: true}
	w1 := &Host{Name: "worker1", Roles: []string{"worker"}, Error: "dial tcp: i/o timeout"}
	r := &Report{Cluster: "lab", Time: now, VIP: "10.77.0.100", Hosts: []*Host{slb1, slb2, m1, bad, w1}}
	r.Judge(DefaultThresholds)
	for _, want := range []string{"worker1 unreachable", "master2 etcd failed", "master2 disk / 93%", "master2 etcd unhealthy",
		"master2 kube-apiserver not ready", "master2 node not Ready", "slb1 sees master2 DOWN in HAProxy",
		"master1 certificate /etc/etcd/pki/server.crt expires 2026-12-20", "the VIP 10.77.0.100 is held by 2 slb host(s)"} {
		if !strings.Contains(r.Verdict, want) {
			t.Errorf("verdict lacks %q:\n%s", want, r.Verdict)
		}
	}
	if r.Healthy || !strings.HasPrefix(r.Verdict, "degraded: ") {
		t.Errorf("verdict %q", r.Verdict)
	}

	var text, js, prom bytes.Buffer
	if err := r.Text(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", text.String())
	for _, want := range []string{"lab — degraded", "\nslb\n", "\nmasters\n", "\nworkers\n", "worker1  unreachable", "master1 UP, master2 DOWN", "leader"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if err := r.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Hosts) != 5 || back.Healthy {
		t.Errorf("json: %v %+v", err, back)
	}
	if err := r.Prometheus(&prom); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`k4t_cluster_healthy{cluster="lab"} 0`, `k4t_host_up{cluster="lab",host="worker1"} 0`,
		`k4t_etcd_member_healthy{cluster="lab",host="master2"} 0`, `k4t_haproxy_backend_up{cluster="lab",host="slb1",backend="master2"} 0`,
		`k4t_host_filesystem_used_ratio{cluster="lab",host="master2",path="/"} 0.93`, "# TYPE k4t_node_ready gauge"} {
		if !strings.Contains(prom.String(), want) {
			t.Errorf("prometheus lacks %q:\n%s", want, prom.String())
		}
	}
	// Prometheus' own parser reads it: one family per metric name, every
	// sample typed.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(prom.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus' text parser: %v\n%s", err, prom.String())
	}
	if up := families["k4t_host_up"]; up == nil || len(up.GetMetric()) != 5 || up.GetType().String() != "GAUGE" {
		t.Errorf("k4t_host_up: %v", up)
	}
}

// A host k4t logged in to whose status script timed out is named as such,
// not as unreachable.
func TestJudgeLoggedInButNoStatus(t *testing.T) {
	r := &Report{Hosts: []*Host{{Name: "worker1", Roles: []string{"worker"}, LoggedIn: true, Error: "the status script did not finish in 20s"},
		{Name: "worker2", Roles: []string{"worker"}, Error: "dial tcp: connection refused"}}}
	r.Judge(DefaultThresholds)
	if !slices.Contains(r.Problems, "worker1 did not answer the status check") || !slices.Contains(r.Problems, "worker2 unreachable") {
		t.Errorf("problems: %q", r.Problems)
	}
	var b strings.Builder
	r.Text(&b)
	if !strings.Contains(b.String(), "logged in, but no status: the status script did not finish") || !strings.Contains(b.String(), "unreachable: dial tcp") {
		t.Errorf("text:\n%s", b.String())
	}
}
