package transport_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"k4t.io/k4t/pkg/transport"
	"k4t.io/k4t/pkg/transport/sshtest"
)

// stubExec answers the transport's own commands without a shell, so the
// benchmark measures SSH and not fork/exec: Stat sees no file, the rest succeed.
func stubExec(cmd string, _ io.Reader, stdout, _ io.Writer) int {
	if strings.Contains(cmd, "stat -Lc") {
		io.WriteString(stdout, "absent\n")
	}
	return 0
}

// BenchmarkFleet connects to N in-process SSH servers through one Pool (16
// at a time, as a phase would), runs a command and puts a file on each.
// Reported: ms per host, SSH connections per host (must be 1), goroutines
// and heap per open host.
func BenchmarkFleet(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchFleet(b, n) })
	}
}

func benchFleet(b *testing.B, n int) {
	k := newTestKey(b)
	kh := newKnownHosts(b, true)
	cfgs := map[string]transport.Config{}
	servers := make([]*sshtest.Server, n)
	for i := range servers {
		s, err := sshtest.New(sshtest.Options{AuthorizedKeys: nil, InMemSFTP: true, Exec: stubExec})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		servers[i] = s
		cfgs[fmt.Sprintf("h%04d", i)] = transport.Config{Addr: s.Addr(), KeyFile: k.file, HostKeys: kh, ConnectTimeout: 30 * time.Second}
	}
	ctx := context.Background()
	content := []byte(strings.Repeat("config line\n", 100))
	b.ResetTimer()
	var goroutines, heap float64
	var conns int64
	for it := 0; it < b.N; it++ {
		pool, dialer := newSSHPool(cfgs)
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for name := range cfgs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				h, err := pool.Get(ctx, name)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := h.Run(ctx, transport.Cmd{Command: "true"}); err != nil {
					b.Error(err)
				}
				if _, err := h.Put(ctx, transport.File{Path: "/etc/k4t.conf", Content: content, Mode: 0o644}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		goroutines = float64(runtime.NumGoroutine())
		heap = float64(ms.HeapInuse)
		conns = dialer.Conns()
		pool.Close()
		dialer.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*n), "ms/host")
	b.ReportMetric(float64(conns)/float64(n), "conns/host")
	b.ReportMetric(goroutines/float64(n), "goroutines/host")
	b.ReportMetric(heap/float64(n)/1024, "KiB-heap/host")
}
