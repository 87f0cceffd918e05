package sshtest_test

import (
	"io"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"k4t.io/k4t/pkg/transport/sshtest"
)

func client(t *testing.T, s *sshtest.Server, auth ssh.AuthMethod) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{auth}, HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestInMemSFTPAndExec(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{Password: "pw", InMemSFTP: true,
		Exec: func(cmd string, _ io.Reader, stdout, _ io.Writer) int {
			io.WriteString(stdout, "ran "+cmd)
			return 7
		}})
	c := client(t, s, ssh.Password("pw"))
	sess, _ := c.NewSession()
	out, err := sess.Output("x y")
	var ee *ssh.ExitError
	if string(out) != "ran x y" || !errorsAs(err, &ee) || ee.ExitStatus() != 7 {
		t.Fatalf("exec: %q %v", out, err)
	}
	fc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	f, err := fc.Create("/a.tmp")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("mem"))
	f.Close()
	if err := fc.PosixRename("/a.tmp", "/a"); err != nil {
		t.Fatal(err)
	}
	r, err := fc.Open("/a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "mem" || s.SFTPBytesIn() == 0 || s.Conns() != 1 || s.Execs() != 1 {
		t.Fatalf("read %q, sftp bytes %d, conns %d, execs %d", b, s.SFTPBytesIn(), s.Conns(), s.Execs())
	}
}

func TestFreshHostKeyAndClose(t *testing.T) {
	hk, err := sshtest.NewHostKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sshtest.New(sshtest.Options{HostKey: hk})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.HostKey().Marshal()) != string(hk.PublicKey().Marshal()) {
		t.Fatal("host key not used")
	}
	s.Close()
	s.Close()
}

func errorsAs(err error, target **ssh.ExitError) bool {
	e, ok := err.(*ssh.ExitError)
	if ok {
		*target = e
	}
	return ok
}
