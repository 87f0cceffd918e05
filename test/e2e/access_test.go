package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/lab"
)

// mixedAccess rewrites the HA inventory the way the user of issue 8 had
// it: master3 logs in as root by password, worker1 is reached through a
// jump host (slb1), worker2 as a user whose sudo asks for a password. It
// returns those passwords, which must then appear nowhere.
func (e *env) mixedAccess(t *testing.T) []string {
	rootPW, err := e.lab.Password()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 12)
	rand.Read(b)
	sudoPW := "sudo-" + hex.EncodeToString(b)
	// The user's password reaches chpasswd on stdin, not in any argv.
	e.exec("worker2", "id k4tops >/dev/null 2>&1 || useradd -m -s /bin/sh k4tops; "+
		"printf 'k4tops:%s\\n' '"+sudoPW+"' | chpasswd && "+
		"install -d -m 700 -o k4tops -g k4tops /home/k4tops/.ssh && install -m 600 -o k4tops -g k4tops /root/.ssh/authorized_keys /home/k4tops/.ssh/ && "+
		"echo 'k4tops ALL=(ALL) ALL' > /etc/sudoers.d/k4tops && chmod 440 /etc/sudoers.d/k4tops")
	t.Setenv("K4T_E2E_ROOT_PW", rootPW)
	t.Setenv("K4T_E2E_SUDO_PW", sudoPW)

	c, err := lab.Inventory(only(mustHosts(t, e.lab), haHosts), e.lab.KeyFile(), vip)
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Bastions = []v1alpha1.Bastion{{Name: "jump", Address: "10.77.0.11", User: "root", SSH: v1alpha1.SSH{KeyFile: e.lab.KeyFile()}}}
	for i := range c.Spec.Hosts {
		h := &c.Spec.Hosts[i]
		switch h.Name {
		case "master3":
			h.SSH = v1alpha1.SSH{Password: &v1alpha1.SecretRef{Env: "K4T_E2E_ROOT_PW"}}
		case "worker1":
			h.SSH.Bastion = "jump"
		case "worker2":
			h.User = "k4tops"
			h.Sudo = v1alpha1.Sudo{Enabled: true, Password: &v1alpha1.SecretRef{Env: "K4T_E2E_SUDO_PW"}}
		}
	}
	e.saveInventory(t, c)
	return []string{rootPW, sudoPW}
}

// passwordsNowhere greps the hosts' journals and logs for the passwords
// (sudo logs every command line it runs: the password must not be in one).
func (e *env) passwordsNowhere(t *testing.T, pws []string) {
	for _, h := range []string{"master3", "worker2"} {
		for _, pw := range pws {
			out, _ := e.tryExec(h, "journalctl --no-pager -o cat 2>/dev/null | grep -c -F -e '"+pw+"'; grep -r -l -F -e '"+pw+"' /var/log /etc/kubernetes /home/k4tops 2>/dev/null | head -3")
			if fs := strings.Fields(out); len(fs) == 0 || fs[0] != "0" {
				t.Errorf("%s: a password is in the journal or a log: %s", h, out)
			}
		}
	}
}
