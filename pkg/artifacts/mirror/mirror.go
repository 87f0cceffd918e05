// Package mirror lays out a set of artifacts the way their projects publish
// them: dl.k8s.io's and GitHub's release paths, each file with the kind of
// checksum file its project puts beside it, and images pushed to a registry
// under their upstream names. Served over HTTP, the tree is a mirror that
// spec.artifacts.mirrors and spec.registry.mirrors can point at; the lab
// tests make one from what hack/build-artifacts built.
package mirror

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"k4t.io/k4t/pkg/artifacts"
)

// Write lays out the files of m (artifacts with local paths, as build.sh's
// manifests have) for versions v and linux/arch below dir: dir/dl.k8s.io/…
// and dir/github.com/…, matching artifacts.UpstreamManifest. A file already
// there is kept, so a second call costs little.
func Write(dir string, m *artifacts.Manifest, v artifacts.Versions, arch string) error {
	up := artifacts.UpstreamManifest(v, arch)
	local := func(n string) (string, error) {
		a, err := m.Get(n)
		if err != nil {
			return "", err
		}
		return m.LocalPath(a), nil
	}
	// Archives: the members of each upstream .tar.gz, by URL.
	members := map[string][][2]string{} // url -> (member, local file)
	sums := map[string]string{}         // url -> its sum URL
	for _, a := range up.Artifacts {
		if a.Pulled() {
			continue
		}
		src, err := local(a.Name)
		if err != nil {
			return err
		}
		sums[a.URL] = a.SumURL
		if a.Member != "" {
			members[a.URL] = append(members[a.URL], [2]string{a.Member, src})
			continue
		}
		if err := copyFile(src, target(dir, a.URL)); err != nil {
			return err
		}
	}
	for u, ms := range members {
		if err := writeTarGz(target(dir, u), ms); err != nil {
			return err
		}
	}
	// Checksum files: several files share SHA256SUMS or runc.sha256sum.
	lines := map[string][]string{}
	for u, su := range sums {
		sum, err := artifacts.FileSHA256(target(dir, u))
		if err != nil {
			return err
		}
		base := u[strings.LastIndexByte(u, '/')+1:]
		line := sum + "  " + base
		if strings.HasSuffix(su, ".sha256") && strings.HasPrefix(su, artifacts.KubernetesReleases) ||
			strings.Contains(su, "cri-tools") {
			line = sum // a bare sum, as dl.k8s.io and cri-tools publish
		}
		if !contains(lines[su], line) {
			lines[su] = append(lines[su], line)
		}
	}
	for su, ls := range lines {
		if err := os.WriteFile(target(dir, su), []byte(strings.Join(ls, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// PushImages pushes the image artifacts of m to the registry at host
// (plain HTTP) under their upstream repository names and tags.
func PushImages(ctx context.Context, host string, m *artifacts.Manifest, opts ...remote.Option) error {
	for _, a := range m.Artifacts {
		if a.Kind != artifacts.KindImage || a.Path == "" {
			continue
		}
		up, err := name.NewTag(a.Image)
		if err != nil {
			return err
		}
		img, err := tarball.ImageFromPath(m.LocalPath(&a), nil)
		if err != nil {
			return fmt.Errorf("image %s: %w", a.Image, err)
		}
		dst, err := name.NewTag(host+"/"+up.RepositoryStr()+":"+up.TagStr(), name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(dst, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
			return fmt.Errorf("pushing %s to %s: %w", a.Image, dst, err)
		}
	}
	return nil
}

// target is the file under dir for an upstream URL: its host, then its path.
func target(dir, u string) string {
	rest := u[strings.Index(u, "://")+3:]
	return filepath.Join(dir, filepath.FromSlash(rest))
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func copyFile(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if os.Link(src, dst) == nil {
		return nil // a mirror of a local build: the same file
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// writeTarGz writes members (path in the archive, local file) into a
// .tar.gz at dst, fast rather than small.
func writeTarGz(dst string, members [][2]string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		st, err := os.Stat(m[1])
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: m[0], Mode: 0o755, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		in, err := os.Open(m[1])
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// FileServer serves a tree that Write laid out. It records the Range
// requests it gets, and can drop one response half way (Cut), as a flaky
// network does, so a test proves that a download resumes.
type FileServer struct {
	dir    string
	files  http.Handler
	mu     sync.Mutex
	cut    map[string]bool
	ranges []string
}

// NewFileServer serves dir.
func NewFileServer(dir string) *FileServer {
	return &FileServer{dir: dir, files: http.FileServer(http.Dir(dir)), cut: map[string]bool{}}
}

// Cut makes the next GET of the URL path p send half the file, then drop.
func (f *FileServer) Cut(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[p] = true
}

// Ranges lists the Range requests served: "path bytes=N-".
func (f *FileServer) Ranges() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ranges...)
}

func (f *FileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	cut := f.cut[r.URL.Path]
	delete(f.cut, r.URL.Path)
	if rg := r.Header.Get("Range"); rg != "" {
		f.ranges = append(f.ranges, r.URL.Path+" "+rg)
	}
	f.mu.Unlock()
	if !cut {
		f.files.ServeHTTP(w, r)
		return
	}
	b, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(r.URL.Path)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b[:len(b)/2])
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}
