package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// stateCopies: issue 13's copies of the state dir on two targets; a second
// backup writes none; the bastion's job (--schedule) runs and writes none;
// the state dir lost and rebuilt from worker1's copy, after which plan
// makes 0 changes and certs check-expiration works.
func (e *env) stateCopies(t *testing.T) {
	b, err := os.ReadFile(e.inv)
	if err != nil {
		t.Fatal(err)
	}
	targets := "  stateBackup:\n    targets:\n      - {host: master1, every: 2m, keep: 30}\n      - {host: worker1, every: 1h, keep: 48}\n"
	if !strings.Contains(string(b), "stateBackup:") {
		os.WriteFile(e.inv, []byte(strings.Replace(string(b), "\nspec:\n", "\nspec:\n"+targets, 1)), 0o644)
	}

	first := e.k4t("state", "backup", "-f", e.inv)
	if first.code != 0 || strings.Count(first.stderr, "copied: ") != 2 {
		t.Fatalf("state backup: exit %d\n%s", first.code, first.stderr)
	}
	identity := regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]+`).FindString(first.stderr)
	if identity == "" {
		t.Fatalf("the first backup did not print the identity:\n%s", first.stderr)
	}
	idFile := filepath.Join(t.TempDir(), "state-identity.txt") // kept apart from the bastion
	os.WriteFile(idFile, []byte(identity+"\n"), 0o600)
	dir := "/var/lib/k4t/state-backups/lab"
	for _, h := range []string{"master1", "worker1"} {
		if out := e.exec(h, "stat -c '%a' "+dir+"; stat -c '%a %s' "+dir+"/state-*.tar.gz.age"); !strings.HasPrefix(out, "700\n600 ") {
			t.Errorf("%s: modes and size of the copy: %q, want a 0700 dir and one 0600 file", h, out)
		}
	}
	list := e.k4t("state", "list", "--from", "worker1", "-o", "text", "-f", e.inv)
	if lines := strings.Split(strings.TrimSpace(list.stdout), "\n"); list.code != 0 || len(lines) != 2 || !strings.Contains(lines[1], dir+"/state-") {
		t.Errorf("state list --from worker1: exit %d\n%s%s", list.code, list.stdout, list.stderr)
	}
	size := strings.Fields(e.exec("worker1", "stat -c %s "+dir+"/state-*.tar.gz.age"))[0]
	fmt.Printf("FIGURE state-backup: 2 targets in %s, %s bytes per copy\n", first.duration.Round(time.Millisecond), size)

	again := e.k4t("state", "backup", "-f", e.inv)
	if again.code != 0 || strings.Contains(again.stderr, "copied: ") {
		t.Errorf("a second backup with nothing changed: exit %d\n%s", again.code, again.stderr)
	}
	fmt.Printf("FIGURE state-backup-unchanged: %s, no copy\n", again.duration.Round(time.Millisecond))

	t.Run("--schedule: the bastion's job runs state backup --due and, with nothing changed, copies nothing; --remove", func(t *testing.T) {
		t.Cleanup(func() { e.k4t("state", "backup", "--remove", "-f", e.inv) }) // the bastion's cron.d or timers, as they were
		in := e.k4t("state", "backup", "--schedule", "-o", "text", "-f", e.inv)
		if in.code != 0 || !strings.Contains(in.stdout, "every 2m it runs") {
			t.Fatalf("--schedule: exit %d\n%s%s", in.code, in.stdout, in.stderr)
		}
		job := filepath.Join(e.stateDir, "clusters", "lab", "state-backup-job.sh")
		if cron, err := os.ReadFile("/etc/cron.d/k4t-state-backup-lab"); err == nil && !strings.Contains(string(cron), "-59/2 * * * * root "+job) {
			t.Errorf("cron entry:\n%s", cron)
		}
		start := time.Now()
		if out, err := execLocal("sh", job); err != nil {
			t.Errorf("the job: %v\n%s", err, out)
		}
		took := time.Since(start)
		st := e.k4t("state", "backup", "--status", "-o", "text", "-f", e.inv)
		mustContain(t, "state backup --status", st.stdout, "succeeded", "k4t state backup --due")
		if n := strings.Count(e.exec("master1", "ls "+dir), ".age"); n != 1 {
			t.Errorf("master1 holds %d copies after the job, want 1", n)
		}
		fmt.Printf("FIGURE state-backup-job: %s (nothing due)\n", took.Round(time.Millisecond))
		rm := e.k4t("state", "backup", "--remove", "-o", "text", "-f", e.inv)
		if _, err := os.Stat("/etc/cron.d/k4t-state-backup-lab"); rm.code != 0 || err == nil {
			t.Errorf("--remove: exit %d, cron entry still there (%v)\n%s", rm.code, err, rm.stdout)
		}
	})

	t.Run("the bastion's state dir lost: restored from worker1, plan makes 0 changes, certs check-expiration works", func(t *testing.T) {
		lost := e.stateDir + ".lost"
		if err := os.Rename(e.stateDir, lost); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(e.stateDir, 0o700)
		defer func() { // a failed restore must not cost the tests after this one their state dir
			if t.Failed() {
				os.RemoveAll(e.stateDir)
				os.Rename(lost, e.stateDir)
				return
			}
			os.RemoveAll(lost)
		}()
		// A new bastion knows no host key yet: the first connection trusts it.
		r := e.k4t("state", "restore", "--from", "worker1", "--identity", idFile, "--accept-new-hosts", "-f", e.inv)
		if r.code != 0 || !strings.Contains(r.stderr, "restored ") {
			t.Fatalf("state restore: exit %d\n%s", r.code, r.stderr)
		}
		refused := e.k4t("state", "restore", "--from", "master1", "--identity", idFile, "-f", e.inv)
		if refused.code == 0 || !strings.Contains(refused.stderr, "already holds") {
			t.Errorf("a second restore over the restored state dir: exit %d\n%s", refused.code, refused.stderr)
		}
		plan := e.k4t("plan", "-f", e.inv)
		if plan.code != 0 || plan.changes() != 0 {
			t.Errorf("plan after the restore: exit %d, %d change(s)\n%s\n%s", plan.code, plan.changes(), tail(plan.stdout, 30), plan.stderr)
		}
		check := e.k4t("certs", "check-expiration", "-o", "text", "-f", e.inv)
		if check.code != 0 || !strings.Contains(check.stdout, "apiserver.crt") {
			t.Errorf("certs check-expiration after the restore: exit %d\n%s%s", check.code, check.stdout, check.stderr)
		}
		e.mustKubectl("get", "nodes") // admin.conf came back
		fmt.Printf("FIGURE state-restore: %s; plan after it %s, 0 changes\n", r.duration.Round(time.Millisecond), plan.duration.Round(time.Millisecond))
	})
}

// execLocal runs a command on the bastion (this machine).
func execLocal(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
