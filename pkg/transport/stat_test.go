package transport

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runStat runs scripts/stat.sh with sh on this machine, as a host runs it.
func runStat(t *testing.T, cache string, now time.Time, paths ...string) []FileInfo {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-s", "--"}, paths...)...)
	cmd.Stdin = strings.NewReader(statScript)
	cmd.Env = append(os.Environ(), "K4T_SUM_CACHE="+cache, "K4T_STAT_NOW="+strconv.FormatInt(now.Unix(), 10))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stat.sh: %v\n%s", err, out)
	}
	n := len(paths)
	if n > 0 && paths[0] == "--no-keep" {
		n--
	}
	fis, err := parseStats(out, n)
	if err != nil {
		t.Fatal(err)
	}
	return fis
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestStatScript(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	a := filepath.Join(dir, "a")
	os.WriteFile(a, []byte("one"), 0o640)
	missing := filepath.Join(dir, "missing")
	later := time.Now().Add(time.Minute) // a's ctime is long enough ago to keep its sum

	fis := runStat(t, cache, time.Now(), a, missing)
	if !fis[0].Exists || fis[0].SHA256 != sum([]byte("one")) || fis[0].Mode.Perm() != 0o640 || fis[1].Exists {
		t.Fatalf("stat: %+v", fis)
	}
	if kept, _ := os.ReadDir(cache); len(kept) != 0 {
		t.Fatalf("a sum of a file changed within 2 s was kept: %v", kept)
	}

	runStat(t, cache, later, a)
	kept, _ := os.ReadDir(cache)
	if len(kept) != 1 {
		t.Fatalf("want one kept sum, got %v", kept)
	}
	// The kept sum is what a later stat answers: doctor it to tell.
	entry := filepath.Join(cache, kept[0].Name())
	b, _ := os.ReadFile(entry)
	fields := strings.Fields(string(b))
	fake := strings.Repeat("f", 64)
	os.WriteFile(entry, []byte(strings.Join(fields[:5], " ")+" "+fake+"\n"), 0o644)
	if fis := runStat(t, cache, later, a); fis[0].SHA256 != fake {
		t.Fatalf("the kept sum was not used: %s", fis[0].SHA256)
	}
	// A write (same size, new ctime) is summed again.
	time.Sleep(1100 * time.Millisecond) // ctime has whole seconds in stat's %Z
	os.WriteFile(a, []byte("two"), 0o640)
	if fis := runStat(t, cache, later.Add(time.Minute), a); fis[0].SHA256 != sum([]byte("two")) {
		t.Fatalf("after a write: %s, want the new sum", fis[0].SHA256)
	}
	// A chmod changes the mode and ctime: the mode is read fresh.
	os.Chmod(a, 0o600)
	if fis := runStat(t, cache, later.Add(time.Minute), a); fis[0].Mode.Perm() != 0o600 || fis[0].SHA256 != sum([]byte("two")) {
		t.Fatalf("after a chmod: %+v", fis[0])
	}
}

func TestParseStats(t *testing.T) {
	if _, err := parseStats([]byte("absent\n"), 2); err == nil {
		t.Error("want an error for a missing line")
	}
	if _, err := parseStats([]byte("644 root:root abc\n"), 1); err == nil {
		t.Error("want an error for a short sum")
	}
	fis, err := parseStats([]byte("absent\n755 root:root "+strings.Repeat("a", 64)+"\n"), 2)
	if err != nil || fis[0].Exists || !fis[1].Exists || fis[1].Mode.Perm() != 0o755 {
		t.Fatalf("%+v %v", fis, err)
	}
}

// With --no-keep (plan), kept sums are read and none is written: not even
// the cache dir is made.
func TestStatScriptNoKeep(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	a := filepath.Join(dir, "a")
	os.WriteFile(a, []byte("one"), 0o600)
	later := time.Now().Add(time.Minute)
	fis := runStat(t, cache, later, "--no-keep", a)
	if len(fis) != 1 || fis[0].SHA256 != sum([]byte("one")) {
		t.Fatalf("stat --no-keep: %+v", fis)
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Fatalf("--no-keep made the cache dir (%v)", err)
	}
	runStat(t, cache, later, a) // an apply keeps it
	kept, _ := os.ReadDir(cache)
	if len(kept) != 1 {
		t.Fatalf("want one kept sum, got %v", kept)
	}
	entry := filepath.Join(cache, kept[0].Name())
	b, _ := os.ReadFile(entry)
	doctored := strings.Replace(string(b), sum([]byte("one")), strings.Repeat("ab", 32), 1)
	os.WriteFile(entry, []byte(doctored), 0o600)
	if fis := runStat(t, cache, later, "--no-keep", a); fis[0].SHA256 != strings.Repeat("ab", 32) {
		t.Errorf("--no-keep did not read the kept sum: %+v", fis)
	}
}
