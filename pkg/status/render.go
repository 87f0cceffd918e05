package status

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// JSON writes the report as one JSON document.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Text writes the verdict, then a table per tier.
func (r *Report) Text(w io.Writer) error {
	fmt.Fprintf(w, "%s — %s (%d hosts, %s)\n", r.Cluster, r.Verdict, len(r.Hosts), r.Took.Round(time.Millisecond))
	tiers := []struct {
		title, role string
		cols        []string
		row         func(h *Host) []string
	}{
		{"slb", "slb", []string{"HOST", "UP", "LOAD", "CPU", "MEM AVAIL", "DISK /", "HAPROXY", "KEEPALIVED", "VIP", "BACKENDS"}, func(h *Host) []string {
			vip := "-"
			if h.HoldsVIP {
				vip = "held"
			}
			return append(h.basics(), orWord(h.Units["haproxy"], "-"), orWord(h.Units["keepalived"], "-"), vip, backends(h.Backends))
		}},
		{"etcd", "etcd", []string{"HOST", "UP", "LOAD", "CPU", "MEM AVAIL", "DISK /", "ETCD", "DB", "SNAPSHOT", "CERT EXPIRY"}, func(h *Host) []string {
			return append(h.basics(), h.etcd(), h.db(), h.snapshot(), h.cert())
		}},
		{"masters", "master", []string{"HOST", "UP", "LOAD", "CPU", "MEM AVAIL", "DISK /", "ETCD", "DB", "READYZ", "NODE", "KUBELET", "SNAPSHOT", "CERT EXPIRY"}, func(h *Host) []string {
			return append(h.basics(), h.etcd(), h.db(), orWord(h.Readyz, "-"), h.node(), h.kubelet(), h.snapshot(), h.cert())
		}},
		{"workers", "worker", []string{"HOST", "UP", "LOAD", "CPU", "MEM AVAIL", "DISK /", "CONTAINERD", "NODE", "KUBELET", "CERT EXPIRY"}, func(h *Host) []string {
			return append(h.basics(), orWord(h.Units["containerd"], "-"), h.node(), h.kubelet(), h.cert())
		}},
	}
	for _, t := range tiers {
		var rows [][]string
		for _, h := range r.Hosts {
			if !h.has(t.role) {
				continue
			}
			if !h.Reachable {
				what := "unreachable: "
				if h.LoggedIn {
					what = "logged in, but no status: "
				}
				rows = append(rows, []string{h.Name, what + h.Error})
				continue
			}
			rows = append(rows, t.row(h))
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", t.title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.cols, "\t"))
		for _, row := range rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Leases) > 0 {
		fmt.Fprintf(w, "\nleases: kube-scheduler on %s, kube-controller-manager on %s\n", orWord(r.Leases["kube-scheduler"], "-"), orWord(r.Leases["kube-controller-manager"], "-"))
	}
	if r.NewestSnapshot != "" {
		fmt.Fprintf(w, "newest etcd snapshot in the state dir: %s (%s old)\n", r.NewestSnapshot, r.NewestSnapshotAge.Round(time.Second))
	}
	return nil
}

func (h *Host) basics() []string {
	root := "-"
	for _, d := range h.Disks {
		if d.Path == "/" {
			root = fmt.Sprintf("%d%% used", d.UsedPct)
		}
	}
	mem := "-"
	if h.MemTotal > 0 {
		mem = fmt.Sprintf("%s (%d%%)", byteSize(h.MemAvail), h.MemAvail*100/h.MemTotal)
	}
	return []string{h.Name, shortDuration(h.Uptime), fmt.Sprintf("%.2f/%d", h.Load1, h.CPUs), fmt.Sprintf("%.0f%%", h.CPUBusy), mem, root}
}

func (h *Host) etcd() string {
	switch {
	case h.Etcd == nil:
		return "-"
	case !h.Etcd.Healthy:
		return "unhealthy"
	case len(h.Etcd.Alarms) > 0:
		return "alarm " + strings.Join(h.Etcd.Alarms, ",")
	case h.Etcd.Leader:
		return "leader"
	}
	return "healthy"
}

func (h *Host) db() string {
	if h.Etcd == nil {
		return "-"
	}
	return byteSize(h.Etcd.DBSize)
}

func (h *Host) node() string {
	switch {
	case h.Node == nil:
		return "-"
	case h.Node.Ready:
		return "Ready"
	}
	return "NotReady"
}

func (h *Host) kubelet() string {
	if h.Node == nil {
		return "-"
	}
	return h.Node.KubeletVersion
}

func (h *Host) snapshot() string {
	if h.Snapshot == "" {
		return "-"
	}
	return shortDuration(h.SnapshotAge) + " old"
}

func (h *Host) cert() string {
	if h.CertExpiry.IsZero() {
		return "-"
	}
	return h.CertExpiry.Format("2006-01-02")
}

func backends(b map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		out = append(out, k+" "+b[k])
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0fM", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dK", n>>10)
}

func shortDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// Prometheus writes the report in Prometheus' text exposition format, for
// node_exporter's textfile directory or any scraper.
func (r *Report) Prometheus(w io.Writer) error {
	type sample struct {
		labels string
		value  float64
	}
	metrics := map[string][]sample{}
	help := map[string]string{}
	put := func(name, h string, value float64, labels ...string) {
		help[name] = h
		var ls []string
		ls = append(ls, `cluster="`+esc(r.Cluster)+`"`)
		for i := 0; i+1 < len(labels); i += 2 {
			ls = append(ls, labels[i]+`="`+esc(labels[i+1])+`"`)
		}
		metrics[name] = append(metrics[name], sample{"{" + strings.Join(ls, ",") + "}", value})
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	put("k4t_cluster_healthy", "1 when k4t status found no problem.", b(r.Healthy))
	put("k4t_status_problems", "Problems k4t status found.", float64(len(r.Problems)))
	for _, h := range r.Hosts {
		put("k4t_host_up", "1 when k4t reached the host over SSH.", b(h.Reachable), "host", h.Name)
		if !h.Reachable {
			continue
		}
		put("k4t_host_ssh_login_seconds", "Time to log in over SSH.", h.Login.Seconds(), "host", h.Name)
		put("k4t_host_uptime_seconds", "Host uptime.", h.Uptime.Seconds(), "host", h.Name)
		put("k4t_host_load1", "1-minute load average.", h.Load1, "host", h.Name)
		put("k4t_host_cpu_busy_ratio", "CPU busy over 0.2 s.", h.CPUBusy/100, "host", h.Name)
		put("k4t_host_memory_available_bytes", "MemAvailable.", float64(h.MemAvail), "host", h.Name)
		put("k4t_host_memory_total_bytes", "MemTotal.", float64(h.MemTotal), "host", h.Name)
		put("k4t_host_clock_offset_seconds", "Host clock minus the bastion's.", h.ClockOffset.Seconds(), "host", h.Name)
		for _, d := range h.Disks {
			put("k4t_host_filesystem_used_ratio", "Used share of the filesystem.", float64(d.UsedPct)/100, "host", h.Name, "path", d.Path)
			put("k4t_host_filesystem_free_bytes", "Free bytes on the filesystem.", float64(d.Free), "host", h.Name, "path", d.Path)
		}
		for _, u := range slices.Sorted(maps.Keys(h.Units)) {
			put("k4t_unit_active", "1 when the unit k4t installed is active.", b(h.Units[u] == "active"), "host", h.Name, "unit", u)
		}
		if h.has("slb") {
			put("k4t_vip_held", "1 on the slb host holding the VIP.", b(h.HoldsVIP), "host", h.Name)
			for _, k := range slices.Sorted(maps.Keys(h.Backends)) {
				put("k4t_haproxy_backend_up", "1 when HAProxy on the slb host sees the master UP.", b(h.Backends[k] == "UP"), "host", h.Name, "backend", k)
			}
		}
		if e := h.Etcd; e != nil {
			put("k4t_etcd_member_healthy", "1 when the member answers a linearizable health check.", b(e.Healthy), "host", h.Name)
			put("k4t_etcd_member_leader", "1 on the leader.", b(e.Leader), "host", h.Name)
			put("k4t_etcd_db_size_bytes", "etcd's database size.", float64(e.DBSize), "host", h.Name)
			put("k4t_etcd_alarms", "Active etcd alarms.", float64(len(e.Alarms)), "host", h.Name)
		}
		if h.Readyz != "" {
			put("k4t_apiserver_ready", "1 when kube-apiserver's /readyz answers ok on the master.", b(h.Readyz == "ok"), "host", h.Name)
		}
		if h.Node != nil {
			put("k4t_node_ready", "1 when the Node is Ready.", b(h.Node.Ready), "host", h.Name, "kubelet_version", h.Node.KubeletVersion)
		}
		if !h.CertExpiry.IsZero() {
			put("k4t_cert_expiry_timestamp_seconds", "The soonest NotAfter of the host's certificates.", float64(h.CertExpiry.Unix()), "host", h.Name)
		}
		if h.Snapshot != "" {
			put("k4t_etcd_snapshot_age_seconds", "Age of the newest scheduled snapshot on the member.", h.SnapshotAge.Seconds(), "host", h.Name)
		}
	}
	if r.NewestSnapshot != "" {
		put("k4t_state_etcd_snapshot_age_seconds", "Age of the newest etcd snapshot in the state dir.", r.NewestSnapshotAge.Seconds())
	}
	names := make([]string, 0, len(metrics))
	for n := range metrics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", n, help[n], n)
		for _, s := range metrics[n] {
			fmt.Fprintf(w, "%s%s %g\n", n, s.labels, s.value)
		}
	}
	return nil
}

func esc(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
