package templates

import (
	"strings"
	"time"
)

// BastionJob is a k4t command the bastion runs on a schedule (`k4t certs
// schedule`, `k4t state backup --schedule`): a job script in the state dir
// that runs k4t, logs and records its result, started by a systemd timer
// when systemd is PID 1, otherwise by an /etc/cron.d entry.
type BastionJob struct {
	// Unit names the service, timer and cron file (see JobUnitName).
	Unit string
	// By is the k4t command that installs it ("certs schedule"); Title a
	// short description (systemd's Description); Does a sentence for the
	// files' comments.
	By, Title, Does string
	// Args are k4t's arguments between --state-dir and -f.
	Args string
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
	// Every is how often the job runs.
	Every time.Duration

	invalid []string // problems found by the job's owner
}

type bastionJobView struct {
	BastionJob
	Every, Schedule, Accuracy string
	EverySeconds              int64
}

// JobUnitName is prefix + the cluster name with every character cron.d
// would ignore (anything but letters, digits, '-' and '_') replaced by '-'.
func JobUnitName(prefix, cluster string) string {
	var b strings.Builder
	for _, r := range cluster {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return prefix + b.String()
}

func (j BastionJob) view() (bastionJobView, error) {
	p := problems{what: j.By}
	if j.Cluster == "" {
		p.add("Cluster: must not be empty")
	}
	for _, f := range []struct{ name, v string }{
		{"Binary", j.Binary}, {"StateRoot", j.StateRoot}, {"Inventory", j.Inventory},
		{"Log", j.Log}, {"Status", j.Status}, {"Lock", j.Lock}, {"Job", j.Job},
	} {
		p.absPath(f.name, f.v)
		if strings.ContainsAny(f.v, "'\n\r%") || containsSpace(f.v) {
			p.add("%s: %q may not hold spaces, quotes or '%%' (systemd and cron would split or expand it); use a path without them", f.name, f.v)
		}
	}
	if j.Every < time.Minute {
		p.add("Every: %s is shorter than a minute", j.Every)
	}
	for _, s := range j.invalid {
		p.add("%s", s)
	}
	accuracy := "1min" // systemd's default; a short interval wants the timer on time
	if j.Every < time.Hour {
		accuracy = "5s"
	}
	return bastionJobView{BastionJob: j, Every: FormatDays(j.Every), EverySeconds: int64(j.Every / time.Second), Accuracy: accuracy}, p.err()
}

// Script renders the job script (0700 at Job).
func (j BastionJob) Script() ([]byte, error) { return j.render("k4t-job.sh.tmpl", false) }

// Service renders the oneshot unit that runs the job.
func (j BastionJob) Service() ([]byte, error) { return j.render("k4t-job.service.tmpl", false) }

// Timer renders the timer that starts the service every Every (and after boot).
func (j BastionJob) Timer() ([]byte, error) { return j.render("k4t-job.timer.tmpl", false) }

// Cron renders the /etc/cron.d entry for bastions without systemd as PID 1.
func (j BastionJob) Cron() ([]byte, error) { return j.render("k4t-job.cron.tmpl", true) }

func (j BastionJob) render(file string, cron bool) ([]byte, error) {
	v, err := j.view()
	if err != nil {
		return nil, err
	}
	if cron {
		if v.Schedule, err = CronSchedule(j.Every, j.Unit); err != nil {
			return nil, err
		}
	}
	return render(file, v)
}
