package artifacts

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkVerify64MiB is the cost of checking one kube-apiserver-sized
// binary: cold (first use in a process, full sha256) and warm (stat only).
func BenchmarkVerify64MiB(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 64<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	m := &Manifest{Dir: dir, Artifacts: []Artifact{{Name: "f", Kind: KindArchive, Path: "f", SHA256: sum(data)}}}
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, err := NewStore(m, dir).Resolve(ctx, "f"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		s := NewStore(m, dir)
		if _, _, err := s.Resolve(ctx, "f"); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, _, err := s.Resolve(ctx, "f"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
