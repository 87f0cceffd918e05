package templates

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// HAProxyBackendName is the backend of haproxy.cfg that holds one server per master, named
// after the master; `k4t certs renew` disables and enables servers in it through HAProxy's
// runtime socket.
const HAProxyBackendName = "kube-apiserver"

// Where `k4t certs schedule` puts its files on the bastion; NAME is CertsUnitName(cluster).
//
//	CertsJob      <state dir>/certs-job.sh                    0755 (run by the timer or cron)
//	CertsService  /etc/systemd/system/NAME.service            0644
//	CertsTimer    /etc/systemd/system/NAME.timer              0644
//	CertsCron     /etc/cron.d/NAME                            0644 (no systemd as PID 1)
const (
	SystemdUnitDir = "/etc/systemd/system"
	CronDir        = "/etc/cron.d"
)

// CertsUnitName is the name of the timer, service and cron file of a cluster's scheduled
// renewal: "k4t-certs-" + the cluster name as JobUnitName writes it.
func CertsUnitName(cluster string) string { return JobUnitName("k4t-certs-", cluster) }

// CertsJobInput is the scheduled renewal of one cluster.
type CertsJobInput struct {
	// Cluster is the cluster's name (metadata.name).
	Cluster string
	// Binary is the absolute path of the k4t binary the job runs.
	Binary string
	// StateRoot is k4t's --state-dir; Inventory the absolute path of hosts.yaml.
	StateRoot, Inventory string
	// Log, Status and Lock are absolute paths in the cluster's state dir.
	Log, Status, Lock string
	// Job is the absolute path of the rendered job script (for the unit and cron).
	Job string
	// Every is how often the job runs; RenewBefore the threshold it renews at.
	Every, RenewBefore time.Duration
}

// Bastion is the renewal as a bastion job.
func (in CertsJobInput) Bastion() BastionJob {
	j := BastionJob{Unit: CertsUnitName(in.Cluster), By: "certs schedule",
		Title: "check and renew the certificates of cluster " + in.Cluster,
		Does: fmt.Sprintf("checks every certificate of cluster %s and, when one expires within %s,\n# renews them one master at a time",
			in.Cluster, FormatDays(in.RenewBefore)),
		Args:    "certs renew --if-expiring-within " + FormatDays(in.RenewBefore),
		Cluster: in.Cluster, Binary: in.Binary, StateRoot: in.StateRoot, Inventory: in.Inventory,
		Log: in.Log, Status: in.Status, Lock: in.Lock, Job: in.Job, Every: in.Every}
	if in.RenewBefore <= 0 {
		j.invalid = append(j.invalid, fmt.Sprintf("RenewBefore: %s must be positive", in.RenewBefore))
	}
	return j
}

// FormatDays writes d as k4t's durations read it: "30d", "1d12h", "6h", "90m".
func FormatDays(d time.Duration) string {
	days := d / (24 * time.Hour)
	rest := d % (24 * time.Hour)
	s := ""
	if days > 0 {
		s = strconv.FormatInt(int64(days), 10) + "d"
	}
	if rest > 0 || s == "" {
		r := rest.String() // e.g. "6h0m0s", "1h30m0s", "30s"
		if strings.HasSuffix(r, "m0s") {
			r = strings.TrimSuffix(r, "0s")
		}
		if strings.HasSuffix(r, "h0m") {
			r = strings.TrimSuffix(r, "0m")
		}
		s += r
	}
	return s
}

// CronSchedule turns an interval into cron's five fields. Cron counts calendar fields, so
// only intervals that divide them evenly are accepted: N minutes dividing 60, N hours
// dividing 24, or whole days (every N days restarts on the 1st of each month). The minute
// (and hour for days) is spread by a hash of seed so clusters do not all run at once.
func CronSchedule(every time.Duration, seed string) (string, error) {
	h := fnv.New32a()
	h.Write([]byte(seed))
	sum := h.Sum32()
	minute, hour := sum%60, (sum/60)%24
	switch {
	case every <= 0 || every%time.Minute != 0:
		return "", fmt.Errorf("cron: interval %s is not whole minutes", every)
	case every < time.Hour:
		n := int(every / time.Minute)
		if 60%n != 0 {
			return "", fmt.Errorf("cron: every %s does not divide an hour; use 1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30 minutes, or whole hours", every)
		}
		if n == 1 {
			return "* * * * *", nil
		}
		return fmt.Sprintf("%d-59/%d * * * *", int(minute)%n, n), nil
	case every < 24*time.Hour:
		if every%time.Hour != 0 || 24%int(every/time.Hour) != 0 {
			return "", fmt.Errorf("cron: every %s does not divide a day; use 1, 2, 3, 4, 6, 8 or 12 hours, or whole days", every)
		}
		n := int(every / time.Hour)
		if n == 1 {
			return fmt.Sprintf("%d * * * *", minute), nil
		}
		return fmt.Sprintf("%d %d-23/%d * * *", minute, int(hour)%n, n), nil
	default:
		if every%(24*time.Hour) != 0 {
			return "", fmt.Errorf("cron: every %s is not whole days", every)
		}
		n := int(every / (24 * time.Hour))
		if n == 1 {
			return fmt.Sprintf("%d %d * * *", minute, hour), nil
		}
		if n > 31 {
			return "", fmt.Errorf("cron: every %s is longer than a month", every)
		}
		return fmt.Sprintf("%d %d */%d * *", minute, hour, n), nil
	}
}

// Where the node-side fallback lives on each master.
const (
	CertsFallbackScriptPath = "/etc/kubernetes/k4t/certs-fallback.sh"
	CertsFallbackUnit       = "k4t-certs-fallback"
)

// CertsFallbackInput is the node-side fallback of one master: a daily timer that renews
// kubeadm's certificates there when they expire within Before.
type CertsFallbackInput struct {
	// Before is the threshold; keep it below the bastion's --renew-before so the bastion's
	// roll normally comes first.
	Before time.Duration
	// Index and Count place this master's daily run: Count masters are spread over the day
	// (24h/Count apart), so two never restart at once.
	Index, Count int
	// Seed spreads the minute (the cluster name).
	Seed string
	// APIServerPort; default 6443.
	APIServerPort int
}

type fallbackView struct {
	Before, Cert, Paused, Manifests, Crictl, Script, At string
	Seconds                                             int64
	Port                                                int
}

func (in CertsFallbackInput) view() (fallbackView, error) {
	p := problems{what: "certs node fallback"}
	if in.Before < time.Hour {
		p.add("Before: %s is under an hour", in.Before)
	}
	if in.Count < 1 || in.Index < 0 || in.Index >= in.Count {
		p.add("Index %d / Count %d: need 0 <= Index < Count", in.Index, in.Count)
	}
	port := orDefault(in.APIServerPort, 6443)
	p.port("APIServerPort", port)
	if err := p.err(); err != nil {
		return fallbackView{}, err
	}
	h := fnv.New32a()
	h.Write([]byte(in.Seed))
	sum := h.Sum32()
	hour := (int(sum/60)%24 + in.Index*24/in.Count) % 24
	return fallbackView{
		Before: FormatDays(in.Before), Seconds: int64(in.Before / time.Second),
		Cert: "/etc/kubernetes/pki/apiserver.crt", Paused: "/etc/kubernetes/k4t/paused-manifests",
		Manifests: "/etc/kubernetes/manifests", Crictl: "crictl --runtime-endpoint unix://" + ContainerdSocket,
		Script: CertsFallbackScriptPath, At: fmt.Sprintf("%02d:%02d", hour, sum%60), Port: port,
	}, nil
}

// CertsFallbackScript renders the script (0755 at CertsFallbackScriptPath).
func CertsFallbackScript(in CertsFallbackInput) ([]byte, error) {
	v, err := in.view()
	if err != nil {
		return nil, err
	}
	return render("k4t-certs-fallback.sh.tmpl", v)
}

// CertsFallbackService renders /etc/systemd/system/k4t-certs-fallback.service.
func CertsFallbackService(in CertsFallbackInput) ([]byte, error) {
	v, err := in.view()
	if err != nil {
		return nil, err
	}
	return render("k4t-certs-fallback.service.tmpl", v)
}

// CertsFallbackTimer renders /etc/systemd/system/k4t-certs-fallback.timer.
func CertsFallbackTimer(in CertsFallbackInput) ([]byte, error) {
	v, err := in.view()
	if err != nil {
		return nil, err
	}
	return render("k4t-certs-fallback.timer.tmpl", v)
}
