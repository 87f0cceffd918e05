// Package bench measures k4t's engine against many in-process SSH hosts:
// `make bench`; figures go to docs/benchmarks.md.
package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/events"
	"k4t.io/k4t/pkg/phases"
	"k4t.io/k4t/pkg/state"
	"k4t.io/k4t/pkg/status"
	"k4t.io/k4t/pkg/transport"
	"k4t.io/k4t/pkg/transport/sshtest"
)

// wrapped is how the transport sends a command (see transport.remoteLine).
var wrapped = regexp.MustCompile(`(?s)^timeout -k 2 \d+ sh -c '(.*)'$`)

// fakeHost answers the commands preflight and os send, over the same
// in-memory files its sftp server serves. Everything else succeeds.
func fakeHost(h *sftp.Handlers, name string) sshtest.ExecFunc {
	facts := fmt.Sprintf("os=debian\nos_version=12\narch=x86_64\nhostname=%s\ninit=systemd\ncgroup=cgroup2fs\nmemtotal=4000000\nmemavailable=3000000\ndisk_free_kb=20000000\nswap=0\nports_hex=0016,\niface=eth0\nbr_netfilter=yes\noverlay=yes\npkg=apt-get\nsysctl=net.ipv4.ip_forward=1\nsysctl=net.bridge.bridge-nf-call-iptables=1\nsysctl=net.bridge.bridge-nf-call-ip6tables=1\nsysctl=net.ipv4.ip_nonlocal_bind=1\n", name)
	return func(line string, stdin io.Reader, stdout, stderr io.Writer) int {
		cmd := line
		if m := wrapped.FindStringSubmatch(line); m != nil {
			cmd = strings.ReplaceAll(m[1], `'\''`, `'`)
			if i := strings.LastIndex(cmd, "\n# k4t-run-"); i >= 0 {
				cmd = cmd[:i]
			}
		}
		switch {
		case cmd == "sh -s": // k4t status
			io.Copy(io.Discard, stdin)
			now := time.Now()
			fmt.Fprintf(stdout, statusOut, now.Unix(), now.Nanosecond())
		case strings.HasPrefix(cmd, "sh -s -- "):
			script, _ := io.ReadAll(stdin)
			if !strings.HasPrefix(string(script), "# k4t's stat") {
				now := time.Now()
				fmt.Fprintf(stdout, "%stime=%d.%09d\n", facts, now.Unix(), now.Nanosecond())
				return 0
			}
			for _, p := range strings.Fields(strings.TrimPrefix(strings.TrimPrefix(cmd, "sh -s -- "), "--no-keep ")) {
				b, ok := readFile(h, strings.Trim(p, "'"))
				if !ok {
					fmt.Fprintln(stdout, "absent")
					continue
				}
				sum := sha256.Sum256(b)
				fmt.Fprintf(stdout, "644 root:root %s\n", hex.EncodeToString(sum[:]))
			}
		}
		return 0
	}
}

func readFile(h *sftp.Handlers, p string) ([]byte, bool) {
	req := sftp.NewRequest("Get", p)
	req.Flags = 1 // SSH_FXF_READ
	r, err := h.FileGet.Fileread(req)
	if err != nil {
		return nil, false
	}
	var out []byte
	buf := make([]byte, 32<<10)
	for off := int64(0); ; {
		n, err := r.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err != nil || n == 0 {
			break
		}
	}
	return out, true
}

// peak samples the Go heap in use and reports the highest value seen.
func peak() (stop func() uint64) {
	var max atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if v := ms.HeapInuse; v > max.Load() {
				max.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); return max.Load() }
}

func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func hostsN() int {
	if n, err := strconv.Atoi(os.Getenv("K4T_BENCH_HOSTS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// BenchmarkEngine1000Hosts: plan, then a no-op apply, over N in-process SSH
// hosts with the real preflight and os phases, each run with a fresh
// connection pool.
func BenchmarkEngine1000Hosts(b *testing.B) {
	n := hostsN()
	c, servers := benchCluster(b, n)
	st, err := state.Open(b.TempDir(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, conc := range []int{20, 100} {
		run := func(dryRun bool) (time.Duration, int64, int, uint64) {
			keys, err := transport.NewKnownHostsFiles(st.KnownHosts(), true)
			if err != nil {
				b.Fatal(err)
			}
			d := transport.NewDialer()
			cn := engine.NewConnector(c, keys, d)
			defer d.Close()
			defer cn.Close()
			r := &engine.Run{Cluster: c, State: st, Connect: cn.Connect, Events: events.NewEmitter("bench"), DryRun: dryRun, Options: engine.Options{Concurrency: conc}}
			if !dryRun {
				j, err := state.OpenJournal(st.Journal(), "bench")
				if err != nil {
					b.Fatal(err)
				}
				defer j.Close()
				r.Journal = j
			}
			stop := peak()
			start := time.Now()
			sum, err := (&engine.Engine{Run: r, Phases: []engine.Phase{&phases.Preflight{}, &phases.OS{}}}).Execute(context.Background())
			el := time.Since(start)
			pk := stop()
			if err != nil {
				b.Fatal(err)
			}
			return el, d.Conns(), sum.Changes, pk
		}
		first, _, ch, _ := run(false)
		b.Logf("concurrency %d: first apply over %d hosts: %s, %d changes", conc, n, first.Round(time.Millisecond), ch)
		var conns0 int64
		for _, s := range servers {
			conns0 += s.Conns()
		}
		for i := 0; i < b.N; i++ {
			pt, pc, pch, ph := run(true)
			at, ac, ach, ah := run(false)
			fmt.Printf("FIGURE hosts=%d concurrency=%d plan=%s plan_conns=%d plan_changes=%d plan_peak_heap=%dMiB noop_apply=%s apply_conns=%d apply_changes=%d apply_peak_heap=%dMiB\n",
				n, conc, pt.Round(time.Millisecond), pc, pch, ph>>20, at.Round(time.Millisecond), ac, ach, ah>>20)
			if ach != 0 {
				b.Errorf("no-op apply made %d changes", ach)
			}
			if ac != int64(n) || pc != int64(n) {
				b.Errorf("connections: plan %d, apply %d, want exactly %d each", pc, ac, n)
			}
			b.ReportMetric(at.Seconds(), "noop-apply-s")
			b.ReportMetric(pt.Seconds(), "plan-s")
		}
		var conns1 int64
		for _, s := range servers {
			conns1 += s.Conns()
		}
		b.Logf("server side: %d connections accepted for %d runs of %d hosts", conns1-conns0, 2*b.N, n)
	}
	fmt.Printf("FIGURE process VmHWM (client and %d servers in one process): %s\n", n, vmHWM())
}

// writeKey writes one client key for every host (any key is accepted) into
// the benchmark's own temp dir: a path kept from an earlier benchmark would
// name a file its cleanup removed (every host then unreachable).
func writeKey(b *testing.B) string {
	p := filepath.Join(b.TempDir(), "id")
	if err := os.WriteFile(p, []byte(testKey), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

// testKey is a throwaway ed25519 key made for this benchmark only.
const testKey = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACAt6jIk24qNvSKgvxZn13E8K3wOOKC+PdLzoIpQ6wX6oQAAAIiNSv7IjUr+
yAAAAAtzc2gtZWQyNTUxOQAAACAt6jIk24qNvSKgvxZn13E8K3wOOKC+PdLzoIpQ6wX6oQ
AAAEDuoCKoHC4ITu8WdyxbOPVk+Mcu/PSb4KVGaNmBdd8uBC3qMiTbio29IqC/FmfXcTwr
fA44oL490vOgilDrBfqhAAAABWJlbmNo
-----END OPENSSH PRIVATE KEY-----`

// benchCluster starts n in-process SSH hosts, workers named wNNNN.
func benchCluster(b *testing.B, n int) (*v1alpha1.Cluster, []*sshtest.Server) {
	c := &v1alpha1.Cluster{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Metadata: v1alpha1.ObjectMeta{Name: "bench"}}
	var servers []*sshtest.Server
	key := writeKey(b)
	for i := 0; i < n; i++ {
		h := sftp.InMemHandler()
		name := fmt.Sprintf("w%04d", i)
		srv := sshtest.Start(b, sshtest.Options{SFTPHandlers: &h, Exec: fakeHost(&h, name), NoForwarding: true})
		servers = append(servers, srv)
		c.Spec.Hosts = append(c.Spec.Hosts, v1alpha1.Host{Name: name, Address: "127.0.0.1", InternalAddress: "127.0.0.1",
			Port: srv.Port(), User: "root", Roles: []v1alpha1.Role{v1alpha1.RoleWorker},
			SSH: v1alpha1.SSH{KeyFile: key}})
	}
	return c, servers
}

// statusOut is a worker's answer to the status script.
const statusOut = `time %d.%09d
uptime 86400.5
load 0.52 2
cpu_busy 12.5
mem_kb 4000000 3000000
disk / 42 10000000
unit containerd active
unit kubelet active
cert Nov 30 12:00:00 2027 GMT | /var/lib/kubelet/pki/kubelet-client-current.pem
`

// BenchmarkStatus1000Hosts: `k4t status` over N in-process SSH hosts (one
// connection and one command each; no API, as the bench has no master).
func BenchmarkStatus1000Hosts(b *testing.B) {
	n := hostsN()
	c, _ := benchCluster(b, n)
	st, err := state.Open(b.TempDir(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		keys, err := transport.NewKnownHostsFiles(st.KnownHosts(), true)
		if err != nil {
			b.Fatal(err)
		}
		d := transport.NewDialer()
		cn := engine.NewConnector(c, keys, d)
		r := &engine.Run{Cluster: c, State: st, Connect: cn.Connect, Events: events.NewEmitter("bench"), DryRun: true, Options: engine.Options{Concurrency: 100}}
		stop := peak()
		start := time.Now()
		rep := phases.ClusterStatus(context.Background(), r, status.DefaultThresholds)
		el := time.Since(start)
		pk := stop()
		cn.Close()
		d.Close()
		reached := 0
		for _, h := range rep.Hosts {
			if h.Reachable && h.MemTotal > 0 {
				reached++
			}
		}
		if reached != n {
			b.Errorf("%d of %d hosts answered: %s", reached, n, rep.Verdict)
		}
		fmt.Printf("FIGURE status hosts=%d concurrency=100 took=%s conns=%d peak_heap=%dMiB\n", n, el.Round(time.Millisecond), d.Conns(), pk>>20)
		b.ReportMetric(el.Seconds(), "status-s")
	}
}
