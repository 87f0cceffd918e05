// Package status is `k4t status`'s report: what each host said, parsed from
// the status script's lines; the verdict against thresholds; and the report
// as text for people, JSON, or Prometheus' exposition format. It knows
// nothing of SSH: pkg/phases gathers the lines and the API's view.
package status

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is one look at a cluster.
type Report struct {
	Cluster string    `json:"cluster"`
	Time    time.Time `json:"time"`
	// Took is how long gathering took.
	Took time.Duration `json:"tookNs"`
	// Verdict is "healthy" or "degraded: …"; Problems the reasons.
	Verdict  string   `json:"verdict"`
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`
	// VIP is the control plane endpoint the slb hosts hold ("" without slb).
	VIP   string  `json:"vip,omitempty"`
	Hosts []*Host `json:"hosts"`
	// APIError is set when the API could not be asked (nodes, leases).
	APIError string `json:"apiError,omitempty"`
	// Leases: kube-scheduler and kube-controller-manager → the master holding it.
	Leases map[string]string `json:"leases,omitempty"`
	// NewestSnapshot in the state dir (backups/etcd) and its age.
	NewestSnapshot    string        `json:"newestSnapshot,omitempty"`
	NewestSnapshotAge time.Duration `json:"newestSnapshotAgeNs,omitempty"`
}

// Host is what one host said.
type Host struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles"`
	Reachable bool     `json:"reachable"`
	// LoggedIn: k4t logged in, but the host's status script failed or
	// timed out (a host too loaded to answer, not one that is down).
	LoggedIn bool          `json:"loggedIn,omitempty"`
	Error    string        `json:"error,omitempty"`
	Login    time.Duration `json:"loginNs"`
	Uptime   time.Duration `json:"uptimeNs"`
	Load1    float64       `json:"load1"`
	CPUs     int           `json:"cpus"`
	CPUBusy  float64       `json:"cpuBusyPercent"`
	MemTotal int64         `json:"memTotalBytes"`
	MemAvail int64         `json:"memAvailableBytes"`
	Disks    []Disk        `json:"disks"`
	// ClockOffset is the host's clock minus the bastion's, give or take
	// ClockUncertainty (half the time the transport took: a sudo password
	// prompt, a slow login).
	ClockOffset      time.Duration     `json:"clockOffsetNs"`
	ClockUncertainty time.Duration     `json:"clockUncertaintyNs"`
	Units            map[string]string `json:"units"`
	HoldsVIP         bool              `json:"holdsVIP,omitempty"`
	// Backends is HAProxy's view of each master (UP, DOWN, MAINT…).
	Backends map[string]string `json:"backends,omitempty"`
	Etcd     *Etcd             `json:"etcd,omitempty"`
	// Readyz is kube-apiserver's /readyz on a master: "ok" or "failed".
	Readyz string `json:"readyz,omitempty"`
	Node   *Node  `json:"node,omitempty"`
	// CertExpiry is the soonest NotAfter of the certificates on the host.
	CertExpiry time.Time `json:"certExpiry,omitempty"`
	CertFile   string    `json:"certFile,omitempty"`
	// Snapshot is the newest scheduled etcd snapshot on a member.
	Snapshot    string        `json:"snapshot,omitempty"`
	SnapshotAge time.Duration `json:"snapshotAgeNs,omitempty"`
}

// Disk is one filesystem's use.
type Disk struct {
	Path    string `json:"path"`
	UsedPct int    `json:"usedPercent"`
	Free    int64  `json:"freeBytes"`
}

// Etcd is one member's view of itself.
type Etcd struct {
	Healthy bool     `json:"healthy"`
	Leader  bool     `json:"leader"`
	DBSize  int64    `json:"dbSizeBytes"`
	Alarms  []string `json:"alarms,omitempty"`
}

// Node is the API's view of a node.
type Node struct {
	Ready          bool   `json:"ready"`
	KubeletVersion string `json:"kubeletVersion"`
}

// Thresholds make the verdict.
type Thresholds struct {
	// DiskPercent: a filesystem this full or fuller is a problem.
	DiskPercent int
	// MemAvailPercent: less memory available than this is a problem.
	MemAvailPercent int
	// CertWithin: a certificate expiring within this is a problem.
	CertWithin time.Duration
	// ClockSkew: a clock further off the bastion's than this is a problem.
	ClockSkew time.Duration
}

// DefaultThresholds are the flags' defaults.
var DefaultThresholds = Thresholds{DiskPercent: 90, MemAvailPercent: 10, CertWithin: 30 * 24 * time.Hour, ClockSkew: 2 * time.Second}

// Parse fills h from the status script's output; sent (when the bastion
// sent the script) and rtt (until its output was all back) place the host's
// clock against the bastion's.
func (h *Host) Parse(out string, sent time.Time, rtt time.Duration, now time.Time) {
	h.Units = map[string]string{}
	var start, end float64
	defer func() { h.ClockOffset, h.ClockUncertainty = clockOffset(start, end, sent, rtt) }()
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		f := strings.Fields(v)
		switch k {
		case "time":
			start, _ = strconv.ParseFloat(v, 64)
		case "time_end":
			end, _ = strconv.ParseFloat(v, 64)
		case "uptime":
			if s, err := strconv.ParseFloat(v, 64); err == nil {
				h.Uptime = time.Duration(s * float64(time.Second)).Round(time.Second)
			}
		case "load":
			if len(f) == 2 {
				h.Load1, _ = strconv.ParseFloat(f[0], 64)
				h.CPUs, _ = strconv.Atoi(f[1])
			}
		case "cpu_busy":
			h.CPUBusy, _ = strconv.ParseFloat(v, 64)
		case "mem_kb":
			if len(f) == 2 {
				t, _ := strconv.ParseInt(f[0], 10, 64)
				a, _ := strconv.ParseInt(f[1], 10, 64)
				h.MemTotal, h.MemAvail = t<<10, a<<10
			}
		case "disk":
			if len(f) == 3 {
				pct, _ := strconv.Atoi(f[1])
				free, _ := strconv.ParseInt(f[2], 10, 64)
				h.Disks = append(h.Disks, Disk{Path: f[0], UsedPct: pct, Free: free << 10})
			}
		case "unit":
			if len(f) >= 1 {
				state := "unknown"
				if len(f) >= 2 {
					state = f[1]
				}
				h.Units[f[0]] = state
			}
		case "vip":
			h.HoldsVIP = true
		case "backend":
			if len(f) == 2 {
				if h.Backends == nil {
					h.Backends = map[string]string{}
				}
				h.Backends[f[0]] = f[1]
			}
		case "etcd_status", "etcd_health", "etcd_alarms":
			if h.Etcd == nil {
				h.Etcd = &Etcd{}
			}
			h.Etcd.parse(k, v)
		case "snapshot":
			h.Snapshot = v
			if t, ok := SnapshotTime(v); ok {
				h.SnapshotAge = now.Sub(t).Round(time.Second)
			}
		case "readyz":
			h.Readyz = v
		case "cert":
			date, file, ok := strings.Cut(v, " | ")
			if !ok {
				continue
			}
			t, err := time.Parse("Jan _2 15:04:05 2006 MST", strings.TrimSpace(date))
			if err == nil && (h.CertExpiry.IsZero() || t.Before(h.CertExpiry)) {
				h.CertExpiry, h.CertFile = t, file
			}
		}
	}
}

func (e *Etcd) parse(k, v string) {
	switch k {
	case "etcd_status":
		var st []struct {
			Status struct {
				Header struct {
					MemberID uint64 `json:"member_id"`
				} `json:"header"`
				Leader uint64 `json:"leader"`
				DBSize int64  `json:"dbSize"`
			} `json:"Status"`
		}
		if json.Unmarshal([]byte(v), &st) == nil && len(st) == 1 {
			e.Leader = st[0].Status.Header.MemberID != 0 && st[0].Status.Header.MemberID == st[0].Status.Leader
			e.DBSize = st[0].Status.DBSize
		}
	case "etcd_health":
		var hs []struct {
			Health bool `json:"health"`
		}
		e.Healthy = json.Unmarshal([]byte(v), &hs) == nil && len(hs) == 1 && hs[0].Health
	case "etcd_alarms":
		if a := strings.TrimSpace(v); a != "" {
			e.Alarms = strings.Fields(a)
		}
	}
}

// clockOffset is the host's clock minus the bastion's, and how far off that
// may be. The script reads the clock first and last (start, end: Unix
// seconds): what the round trip took beyond the script's own run is the
// transport's, and the first reading was taken somewhere in it; the middle
// is the estimate, half of it the uncertainty. Timing the whole round trip
// instead would count a slow script (etcdctl, openssl on a loaded master)
// as clock skew. Without an end reading, the script's 0.2 s CPU sample is
// the known part of its run.
func clockOffset(start, end float64, sent time.Time, rtt time.Duration) (offset, uncertainty time.Duration) {
	if start == 0 {
		return 0, 0
	}
	run := 200 * time.Millisecond
	if end >= start {
		run = time.Duration((end - start) * float64(time.Second))
	}
	transport := max(rtt-run, 0)
	host := time.Unix(0, int64(start*1e9))
	return host.Sub(sent.Add(transport / 2)).Round(time.Millisecond), (transport / 2).Round(time.Millisecond)
}

// SnapshotTime reads the UTC time at the end of a snapshot's name
// ("scheduled-master1-20261201T080000Z.db").
func SnapshotTime(name string) (time.Time, bool) {
	name = strings.TrimSuffix(name, ".db")
	if i := strings.LastIndex(name, "-"); i >= 0 {
		name = name[i+1:]
	}
	t, err := time.Parse("20060102T150405Z", name)
	return t, err == nil
}

func (h *Host) has(role string) bool { return slices.Contains(h.Roles, role) }

// Judge sets the verdict from the hosts and thresholds.
func (r *Report) Judge(th Thresholds) {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	holders := 0
	hasSLB := false
	for _, h := range r.Hosts {
		if !h.Reachable {
			if h.LoggedIn {
				add("%s did not answer the status check", h.Name)
			} else {
				add("%s unreachable", h.Name)
			}
			continue
		}
		for _, u := range slices.Sorted(maps.Keys(h.Units)) {
			if h.Units[u] != "active" {
				add("%s %s %s", h.Name, u, orWord(h.Units[u], "not running"))
			}
		}
		for _, d := range h.Disks {
			if d.UsedPct >= th.DiskPercent {
				add("%s disk %s %d%%", h.Name, d.Path, d.UsedPct)
			}
		}
		if h.MemTotal > 0 && h.MemAvail*100 < h.MemTotal*int64(th.MemAvailPercent) {
			add("%s memory %d%% available", h.Name, h.MemAvail*100/h.MemTotal)
		}
		if off := max(h.ClockOffset, -h.ClockOffset) - h.ClockUncertainty; th.ClockSkew > 0 && off > th.ClockSkew {
			add("%s clock off by %s (±%s)", h.Name, h.ClockOffset, h.ClockUncertainty)
		}
		if h.has("slb") {
			hasSLB = true
			if h.HoldsVIP {
				holders++
			}
			for _, b := range slices.Sorted(maps.Keys(h.Backends)) {
				if h.Backends[b] != "UP" {
					add("%s sees %s %s in HAProxy", h.Name, b, h.Backends[b])
				}
			}
		}
		if e := h.Etcd; e != nil {
			if !e.Healthy {
				add("%s etcd unhealthy", h.Name)
			}
			if len(e.Alarms) > 0 {
				add("%s etcd alarm %s", h.Name, strings.Join(e.Alarms, " "))
			}
		}
		if h.has("master") && h.Readyz != "ok" {
			add("%s kube-apiserver not ready", h.Name)
		}
		if h.Node != nil && !h.Node.Ready {
			add("%s node not Ready", h.Name)
		}
		if (h.has("master") || h.has("worker")) && h.Node == nil && r.APIError == "" {
			add("%s has no Node", h.Name)
		}
		if !h.CertExpiry.IsZero() && h.CertExpiry.Sub(r.Time) < th.CertWithin {
			add("%s certificate %s expires %s", h.Name, h.CertFile, h.CertExpiry.Format("2006-01-02"))
		}
	}
	if hasSLB && holders != 1 {
		add("the VIP %s is held by %d slb host(s)", r.VIP, holders)
	}
	if r.APIError != "" {
		add("the API did not answer: %s", r.APIError)
	}
	r.Problems, r.Healthy = p, len(p) == 0
	r.Verdict = "healthy"
	if !r.Healthy {
		r.Verdict = "degraded: " + strings.Join(p, "; ")
	}
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
