// Package artifacts describes the binaries, images and archives a cluster
// needs (a manifest) and resolves each to a local file whose sha256 has been
// checked (a Store). An artifact comes from a local path (what
// hack/build-artifacts/build.sh produces) or from a URL that is downloaded
// once into a cache; either way the sum in the manifest is the authority.
package artifacts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Kind is what an artifact is, which decides how a node installs it.
type Kind string

const (
	// KindBinary is one executable, copied to Install with Mode.
	KindBinary Kind = "binary"
	// KindImage is a container image tarball (docker-archive or OCI),
	// imported into containerd; Image names it.
	KindImage Kind = "image"
	// KindArchive is a .tar.gz extracted into the directory Install.
	KindArchive Kind = "archive"
)

// Manifest lists the artifacts of one release set.
type Manifest struct {
	// Version names the set (e.g. v1.37.2 or etcd-v3.6.16).
	Version   string     `json:"version"`
	Artifacts []Artifact `json:"artifacts"`

	// Arch is the hosts' architecture (amd64, arm64) images are pulled for;
	// empty means amd64.
	Arch string `json:"arch,omitempty"`

	// Dir is where relative paths are resolved from: the manifest's directory.
	Dir string `json:"-"`
	// Source names where the manifest came from, for error messages.
	Source string `json:"-"`

	// missing explains, per artifact name, how to build what DefaultManifest
	// could not find.
	missing map[string]string
}

// Artifact is one file a cluster needs.
type Artifact struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    Kind   `json:"kind"`
	// URL, when set, is downloaded into the store's cache (http or https).
	URL string `json:"url,omitempty"`
	// Path is a local file, relative to the manifest's directory or absolute.
	// Exactly one of URL and Path is set.
	Path string `json:"path,omitempty"`
	// SHA256 is the lowercase hex sum of the file. A URL artifact may leave
	// it out and name SumURL instead.
	SHA256 string `json:"sha256,omitempty"`
	// SumURL is the checksum file the artifact's project publishes beside
	// it (a bare sum, or "sum  file" lines as sha256sum writes): the sum of
	// URL is read there once and then pinned in the cluster's state dir.
	SumURL string `json:"sumUrl,omitempty"`
	// Member, for a binary that a URL's .tar.gz carries, is its path in
	// the archive (e.g. bin/containerd): the archive is checked, then the
	// member is taken out of it on the bastion.
	Member string `json:"member,omitempty"`
	// Install is the remote path: the file for a binary, the directory an
	// archive is extracted into; unused for images.
	Install string `json:"install,omitempty"`
	// Mode is the remote file mode of a binary (default 0755).
	Mode FileMode `json:"mode,omitempty"`
	// Image is the reference an image tarball carries, e.g.
	// registry.k8s.io/pause:3.10.2.
	Image string `json:"image,omitempty"`
}

// FileMode is a file mode written as a quoted octal string ("0755").
type FileMode fs.FileMode

// UnmarshalJSON accepts "0755" (octal string) or a number up to 0777
// (YAML reads an unquoted 0755 as octal already).
func (m *FileMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := strconv.ParseUint(s, 8, 32)
		if err != nil || v > 0o7777 {
			return fmt.Errorf("mode %q is not an octal file mode like \"0755\"", s)
		}
		*m = FileMode(v)
		return nil
	}
	var n uint64
	if err := json.Unmarshal(b, &n); err != nil || n > 0o777 {
		return fmt.Errorf("mode %s is not a file mode: write it quoted in octal, like \"0755\"", b)
	}
	*m = FileMode(n)
	return nil
}

// MarshalJSON writes the mode as a quoted octal string.
func (m FileMode) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%04o", uint32(m)))
}

// FileMode is the mode to install a binary with: Mode, or 0755 when unset.
func (a *Artifact) FileMode() fs.FileMode {
	if a.Mode == 0 {
		return 0o755
	}
	return fs.FileMode(a.Mode)
}

// Source is the URL or the path the artifact comes from, for display.
func (a *Artifact) Source() string {
	switch {
	case a.URL != "":
		return a.URL
	case a.Pulled():
		return a.Image
	}
	return a.Path
}

// Pulled says the artifact is an image pulled from its registry (it names
// neither a URL nor a path).
func (a *Artifact) Pulled() bool { return a.Kind == KindImage && a.URL == "" && a.Path == "" }

// FileName is the base name of the artifact's file: from its path or URL,
// else its name.
func (a *Artifact) FileName() string {
	src := a.Path
	if a.URL != "" {
		src = a.URL
		if u, err := url.Parse(a.URL); err == nil {
			src = u.Path
		}
	}
	if b := path.Base(src); src != "" && b != "/" && b != "." && b != ".." {
		return b
	}
	return a.Name
}

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Load reads and validates a manifest file.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading artifact manifest: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("artifact manifest %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("artifact manifest %s: %w", path, err)
	}
	m.Dir = filepath.Dir(abs)
	m.Source = abs
	return m, nil
}

// Parse decodes and validates manifest YAML. Dir is left empty (relative
// paths then resolve against the working directory).
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("not a valid manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks every artifact: a unique name, a known kind, exactly one of
// url and path, and a sha256.
func (m *Manifest) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, a := range m.Artifacts {
		where := fmt.Sprintf("artifact %d (%s)", i+1, a.Name)
		if a.Name == "" {
			errs = append(errs, fmt.Errorf("artifact %d: name is empty", i+1))
		} else if seen[a.Name] {
			errs = append(errs, fmt.Errorf("%s: name is listed twice", where))
		}
		seen[a.Name] = true
		switch a.Kind {
		case KindBinary, KindImage, KindArchive:
		default:
			errs = append(errs, fmt.Errorf("%s: kind %q is not binary, image or archive", where, a.Kind))
		}
		if a.URL != "" && a.Path != "" || a.URL == "" && a.Path == "" && !a.Pulled() {
			errs = append(errs, fmt.Errorf("%s: set exactly one of url and path (an image may set neither: it is pulled)", where))
		}
		for _, u := range []string{a.URL, a.SumURL} {
			if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				errs = append(errs, fmt.Errorf("%s: url %q is not http(s)", where, u))
			}
		}
		switch {
		case a.Pulled(), a.URL != "" && a.SHA256 == "" && a.SumURL != "":
		case !sha256Re.MatchString(a.SHA256):
			errs = append(errs, fmt.Errorf("%s: sha256 %q is not 64 lowercase hex digits (get it with sha256sum FILE)", where, a.SHA256))
		}
		if a.Member != "" && a.URL == "" {
			errs = append(errs, fmt.Errorf("%s: member %q needs a url (the archive it is in)", where, a.Member))
		}
		if m := a.Member; m != "" && (path.IsAbs(m) || slices.Contains(strings.Split(m, "/"), "..")) {
			errs = append(errs, fmt.Errorf("%s: member %q must be a relative path inside the archive, without ..", where, m))
		}
		if a.Kind == KindBinary && a.Install == "" {
			errs = append(errs, fmt.Errorf("%s: a binary needs install (its path on hosts, e.g. /usr/local/bin/%s)", where, a.Name))
		}
		if a.Install != "" && !filepath.IsAbs(a.Install) {
			errs = append(errs, fmt.Errorf("%s: install %q must be an absolute path", where, a.Install))
		}
		if a.Kind == KindImage && a.Image == "" {
			errs = append(errs, fmt.Errorf("%s: an image needs image (its reference, e.g. registry.k8s.io/pause:3.10.2)", where))
		}
	}
	return errors.Join(errs...)
}

// Get returns the named artifact. A missing one is an error that says how
// to get it.
func (m *Manifest) Get(name string) (*Artifact, error) {
	for i := range m.Artifacts {
		if m.Artifacts[i].Name == name {
			return &m.Artifacts[i], nil
		}
	}
	if hint, ok := m.missing[name]; ok {
		return nil, errors.New(hint)
	}
	if hint, ok := m.missing[""]; ok {
		return nil, fmt.Errorf("artifact %q: %s", name, hint)
	}
	return nil, fmt.Errorf("artifact %q is not in the manifest %s (it has: %s): add it, or build it with hack/build-artifacts/build.sh", name, m.describe(), strings.Join(m.Names(), ", "))
}

// Names lists the artifact names, sorted.
func (m *Manifest) Names() []string {
	n := make([]string, 0, len(m.Artifacts))
	for _, a := range m.Artifacts {
		n = append(n, a.Name)
	}
	sort.Strings(n)
	return n
}

// LocalPath is where a path artifact's file is: Path, resolved against Dir
// when relative. It is empty for URL artifacts.
func (m *Manifest) LocalPath(a *Artifact) string {
	if a.Path == "" {
		return ""
	}
	if filepath.IsAbs(a.Path) || m.Dir == "" {
		return a.Path
	}
	return filepath.Join(m.Dir, a.Path)
}

func (m *Manifest) describe() string {
	if m.Source != "" {
		return m.Source
	}
	if m.Version != "" {
		return m.Version
	}
	return "(in memory)"
}
