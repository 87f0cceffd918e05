package state

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestOpenModes(t *testing.T) {
	d, err := Open(t.TempDir(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"", "pki", "rendered", "logs"} {
		st, err := os.Stat(d.Path(sub))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", sub, st.Mode().Perm())
		}
	}
	s1, err := d.Secret("vrrp", func() (string, error) { return "abc", nil })
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := d.Secret("vrrp", func() (string, error) { return "other", nil })
	if s1 != "abc" || s2 != "abc" {
		t.Fatalf("secret not kept: %q %q", s1, s2)
	}
	st, _ := os.Stat(d.Path("secrets", "vrrp"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret mode %v", st.Mode().Perm())
	}
	if got := d.Rendered("m1", "/etc/etcd/etcd.env"); got != filepath.Join(d.Root, "rendered/m1/etc/etcd/etcd.env") {
		t.Errorf("rendered path %s", got)
	}
}

func TestJournalPending(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal.log")
	j, err := OpenJournal(p, "run1")
	if err != nil {
		t.Fatal(err)
	}
	j.Record("m1", "etcd", Intent, "restart:etcd", "restart etcd")
	j.Record("m2", "etcd", Intent, "restart:etcd", "restart etcd")
	j.Record("m1", "etcd", Done, "restart:etcd", "restart etcd")
	j.Record("m3", "etcd", Intent, "restart:etcd", "restart etcd")
	j.Record("m3", "etcd", Failed, "restart:etcd", "exit 1")
	j.Close()
	// a torn line, as a kill -9 mid-write leaves
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("2026-01-01T00:00:00Z run1 m4")
	f.Close()
	got, err := PendingIntents(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Host != "m2" || got[1].Host != "m3" || got[0].Desc != "restart etcd" {
		t.Fatalf("pending = %+v", got)
	}
	none, err := PendingIntents(filepath.Join(t.TempDir(), "absent"))
	if err != nil || none != nil {
		t.Fatalf("absent journal: %v %v", none, err)
	}
}

func TestSecretConcurrent(t *testing.T) {
	d, err := Open(t.TempDir(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]string, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = d.Secret("s", func() (string, error) { return fmt.Sprint(i), nil })
		}()
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] {
			t.Fatalf("parallel callers got different secrets: %v", got)
		}
	}
}
