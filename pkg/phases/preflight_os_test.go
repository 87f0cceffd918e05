package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/transport"
)

// releaseFacts runs the facts script's os-release line (the real one, from
// pkg/engine/scripts/facts.sh) on a real os-release file from
// pkg/hostos/testdata, as a host of that distribution would.
func releaseFacts(t *testing.T, release string) string {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("..", "engine", "scripts", "facts.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(script), "\n") {
		if strings.Contains(l, "/etc/os-release") && !strings.HasPrefix(l, "#") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("facts.sh has no line that reads /etc/os-release")
	}
	p, err := filepath.Abs(filepath.Join("..", "hostos", "testdata", "os-release", release))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", strings.Replace(line, "/etc/os-release", p, 1)).Output()
	if err != nil {
		t.Fatalf("%s: %v", release, err)
	}
	return string(out)
}

// preflightOn runs create's preflight (as plan does) on the HA example,
// every host answering the facts command as a host of release does, with
// extra facts.
func preflightOn(t *testing.T, release, extra string, force bool) (error, []events.Event) {
	return preflightWith(t, &Preflight{Install: true}, release, extra, force)
}

func preflightWith(t *testing.T, p *Preflight, release, extra string, force bool) (error, []events.Event) {
	t.Helper()
	c, st := loadExample(t, "ha.yaml")
	fakes := map[string]*transport.Fake{}
	osLines := releaseFacts(t, release)
	for _, h := range c.Spec.Hosts {
		f := transport.NewFake(h.Name)
		f.Respond("sh -s -- ", osLines+fmt.Sprintf("arch=x86_64\nhostname=%s\ninit=systemd\ncgroup=cgroup2fs\nmemtotal=4000000\nmemavailable=3000000\ndisk_free_kb=90000000\nswap=0\niface=eth0\nbr_netfilter=yes\noverlay=yes\npkg=apt-get\n", h.Name)+extra)
		fakes[h.Name] = f
	}
	coll := &events.Collect{}
	r := &engine.Run{Cluster: c, State: st, Events: events.NewEmitter("os", coll), DryRun: true,
		Connect: func(ctx context.Context, h *v1alpha1.Host) (transport.Host, error) { return fakes[h.Name], nil },
		Options: engine.Options{ForceOS: force}}
	_, err := (&engine.Engine{Run: r, Phases: []engine.Phase{p}}).Execute(context.Background())
	return err, coll.Of(events.Message)
}

func TestPreflightOS(t *testing.T) {
	for _, rel := range []string{"debian-11", "debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04", "ubuntu-26.04",
		"rhel-8.10", "rhel-9.4", "rhel-10.0", "rocky-9.4", "almalinux-8.10", "centos-9"} {
		if err, _ := preflightOn(t, rel, "", false); err != nil {
			t.Errorf("%s refused: %v", rel, err)
		}
	}
	// CentOS 7: refused on every host, with the way out.
	err, _ := preflightOn(t, "centos-7", "", false)
	mustErr(t, err, "master1 / preflight: [os] CentOS Linux 7 (Core) is not supported, even with --force-os: CentOS Linux 7 and older are past their end of life (7 ended on 2024-06-30)",
		"glibc (2.17 or older)", "cgroup v1 only", "move the host to Rocky Linux or AlmaLinux 8 or later", "worker3 / preflight")
	err, _ = preflightOn(t, "centos-7", "", true)
	mustErr(t, err, "master1 / preflight: [os] CentOS Linux 7 (Core) is not supported, even with --force-os")
	// Another distribution: refused with the list; --force-os goes on with a warning.
	err, _ = preflightOn(t, "opensuse-leap-15.6", "", false)
	mustErr(t, err, "slb1 / preflight: [os] openSUSE Leap 15.6 is not a distribution k4t supports",
		"k4t supports Debian 11–13; Ubuntu 22.04–26.04; RHEL, Rocky, AlmaLinux and CentOS Stream 8–10; Alpine 3.19 or later", "--force-os")
	err, msgs := preflightOn(t, "opensuse-leap-15.6", "", true)
	if err != nil {
		t.Errorf("--force-os: %v", err)
	}
	mustMessage(t, msgs, "warn", "master1", "openSUSE Leap 15.6 is not a distribution k4t supports; going on as on a debian host (--force-os)")
	// Alpine: a supported release, but its init is OpenRC, which k4t
	// does not drive yet.
	err, _ = preflightOn(t, "alpine-3.20.7", "init=openrc\n", false) // the later init= wins, as the script's order would
	mustErr(t, err, `worker1 / preflight: [os] init system is "openrc", not systemd — k4t's OpenRC service layer is not built yet`)
}

func TestPreflightFirewall(t *testing.T) {
	err, _ := preflightOn(t, "rocky-9.4", "firewall=firewalld\n", false)
	mustErr(t, err,
		"slb1 / preflight: [firewall] firewalld is active, and k4t does not open ports in it yet; this host needs 6443/tcp, vrrp (IP protocol 112) open — open them (firewall-cmd --permanent --add-port=6443/tcp --add-protocol=vrrp && firewall-cmd --reload)",
		"master1 / preflight: [firewall] firewalld is active, and k4t does not open ports in it yet; this host needs 6443/tcp, 2379-2380/tcp, 10250/tcp, 10257/tcp, 10259/tcp open and the pod network's traffic between nodes (10.244.0.0/16, routed) allowed",
		"worker1 / preflight: [firewall] firewalld is active, and k4t does not open ports in it yet; this host needs 10250/tcp, 30000-32767/tcp open and the pod network's traffic between nodes (10.244.0.0/16, routed) allowed — open them (firewall-cmd --permanent --add-port=10250/tcp --add-port=30000-32767/tcp && firewall-cmd --permanent --zone=trusted --add-source=10.244.0.0/16 && firewall-cmd --reload)",
		"preflight.skip: [firewall]")
	// Only a run that sets hosts up checks it: a reset, an upgrade or a
	// backup of a running cluster does not need new ports.
	if err, _ := preflightWith(t, &Preflight{}, "rocky-9.4", "firewall=firewalld\n", false); err != nil {
		t.Errorf("preflight of another command refused an active firewalld: %v", err)
	}
	err, _ = preflightOn(t, "ubuntu-24.04", "firewall=ufw\n", false)
	mustErr(t, err, "worker2 / preflight: [firewall] ufw is active", "ufw allow 10250/tcp && ufw allow 30000:32767/tcp && ufw route allow from 10.244.0.0/16")
	err, msgs := preflightOn(t, "rocky-9.4", "selinux=enforcing\n", false)
	if err != nil {
		t.Errorf("SELinux enforcing refused: %v", err)
	}
	mustMessage(t, msgs, "warn", "worker1", "SELinux is enforcing")
}

func mustErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	var pe *engine.Error
	s := err.Error()
	if !errors.As(err, &pe) && !strings.Contains(s, "preflight") {
		t.Errorf("error %v names no phase", err)
	}
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("error lacks %q:\n%s", w, s)
		}
	}
}

func mustMessage(t *testing.T, msgs []events.Event, level, host, want string) {
	t.Helper()
	for _, m := range msgs {
		if m.Level == level && m.Host == host && strings.Contains(m.Message, want) {
			return
		}
	}
	t.Errorf("no %s message on %s saying %q in %+v", level, host, want, msgs)
}
