// Package hostos tells which Linux distribution a host runs, from its
// /etc/os-release, whether k4t supports that release, and what differs
// there: the package manager, the init system, the host firewall's tool.
// Everything else k4t does is the same on every supported host.
package hostos

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Family is a group of distributions k4t treats alike.
type Family string

const (
	Debian Family = "debian" // Debian
	Ubuntu Family = "ubuntu" // Ubuntu
	RHEL   Family = "rhel"   // RHEL, Rocky, AlmaLinux, CentOS Stream
	Alpine Family = "alpine" // Alpine (OpenRC)
)

// Release is what /etc/os-release says (the fields k4t reads).
type Release struct {
	ID, IDLike, VersionID, PrettyName string
}

func (r Release) String() string {
	if r.PrettyName != "" {
		return r.PrettyName
	}
	if r.ID == "" {
		return "an unknown distribution (no /etc/os-release)"
	}
	return strings.TrimSpace(r.ID + " " + r.VersionID)
}

// ParseRelease reads os-release content: KEY=value lines, values
// optionally quoted, comments and blank lines ignored.
func ParseRelease(b []byte) Release {
	var r Release
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = unquote(v)
		switch k {
		case "ID":
			r.ID = v
		case "ID_LIKE":
			r.IDLike = v
		case "VERSION_ID":
			r.VersionID = v
		case "PRETTY_NAME":
			r.PrettyName = v
		}
	}
	return r
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1]
		return strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v)
	}
	return v
}

// OS is a detected host OS and what k4t does differently on it.
type OS struct {
	Release
	Family Family
	// Init is the init system k4t manages services with there: systemd,
	// or openrc (Alpine).
	Init string
	// PkgManager installs the few packages k4t needs (haproxy,
	// keepalived): apt-get, dnf or apk.
	PkgManager string
}

// support is one supported line of releases.
type support struct {
	family   Family
	ids      []string // os-release IDs
	name     string   // as the error lists it
	min, max version  // inclusive; max zero: no upper bound
}

// supported is the table of releases k4t supports, each with its
// named minimum (and, where a newer release is not yet known to work,
// maximum) version.
func supported() []support {
	return []support{
		{Debian, []string{"debian"}, "Debian 11–13", version{11, 0}, version{13, 0}},
		{Ubuntu, []string{"ubuntu"}, "Ubuntu 22.04–26.04", version{22, 4}, version{26, 4}},
		{RHEL, []string{"rhel", "rocky", "almalinux", "centos"}, "RHEL, Rocky, AlmaLinux and CentOS Stream 8–10", version{8, 0}, version{10, 0}},
		{Alpine, []string{"alpine"}, "Alpine 3.19 or later", version{3, 19}, version{}},
	}
}

// Supported lists the supported releases, for messages and docs: those
// whose init system is init, or all with "".
func Supported(init string) []string {
	var out []string
	for _, s := range supported() {
		if init == "" || withFamily(Release{}, s.family).Init == init {
			out = append(out, s.name)
		}
	}
	return out
}

// UnsupportedError says a host's release is not one k4t supports, and
// what to do.
type UnsupportedError struct {
	Release Release
	Reason  string
	Hint    string
	// Final: --force-os cannot help (a release k4t is known not to work on).
	Final bool
}

func (e *UnsupportedError) Error() string { return e.Reason }

// Detect tells the host's OS from its os-release. An unsupported release
// is an *UnsupportedError; the OS returned with it is k4t's best guess (by
// ID, then ID_LIKE), for --force-os.
func Detect(r Release) (OS, error) {
	v, verr := parseVersion(r.VersionID)
	if r.ID == "centos" && verr == nil && v.major > 0 && v.major <= 7 {
		return guess(r), &UnsupportedError{Release: r, Final: true,
			Reason: fmt.Sprintf("%s is not supported, even with --force-os: CentOS Linux 7 and older are past their end of life (7 ended on 2024-06-30), their glibc (2.17 or older) is too old for today's containerd, and they have cgroup v1 only", r),
			Hint:   "move the host to Rocky Linux or AlmaLinux 8 or later (both have in-place migration tools from CentOS), then re-run"}
	}
	for _, s := range supported() {
		if !slices.Contains(s.ids, r.ID) {
			continue
		}
		os := withFamily(r, s.family)
		switch {
		case verr != nil && r.VersionID == "":
			return os, unsupported(r, fmt.Sprintf("%s has no VERSION_ID (a testing or rolling release?); k4t supports %s", r, s.name))
		case verr != nil:
			return os, unsupported(r, fmt.Sprintf("%s: cannot read its version (VERSION_ID %q); k4t supports %s", r, r.VersionID, s.name))
		case v.less(s.min):
			return os, unsupported(r, fmt.Sprintf("%s is older than k4t supports (%s)", r, s.name))
		case s.max != (version{}) && s.max.less(v.trim(s.max)):
			return os, unsupported(r, fmt.Sprintf("%s is newer than k4t has been tried on (%s)", r, s.name))
		}
		return os, nil
	}
	return guess(r), unsupported(r, fmt.Sprintf("%s is not a distribution k4t supports", r))
}

func unsupported(r Release, reason string) *UnsupportedError {
	return &UnsupportedError{Release: r, Reason: reason,
		Hint: "k4t supports " + strings.Join(Supported(""), "; ") + ". To try anyway, re-run with --force-os"}
}

// guess picks a family for a release k4t does not support: by ID, then
// by each ID_LIKE in order; a host that matches none is treated as Debian.
func guess(r Release) OS {
	for _, id := range append([]string{r.ID}, strings.Fields(r.IDLike)...) {
		for _, s := range supported() {
			if slices.Contains(s.ids, id) || (id == "fedora" && s.family == RHEL) {
				return withFamily(r, s.family)
			}
		}
	}
	return withFamily(r, Debian)
}

func withFamily(r Release, f Family) OS {
	os := OS{Release: r, Family: f, Init: "systemd", PkgManager: "apt-get"}
	switch f {
	case RHEL:
		os.PkgManager = "dnf"
	case Alpine:
		os.Init, os.PkgManager = "openrc", "apk"
	}
	return os
}

// InstallCommand is the shell command that installs pkgs with the OS's
// package manager, non-interactively.
func (o OS) InstallCommand(pkgs ...string) string {
	list := strings.Join(pkgs, " ")
	switch o.PkgManager {
	case "dnf", "yum":
		return o.PkgManager + " install -y " + list
	case "apk":
		return "apk add --no-cache " + list
	default:
		return "DEBIAN_FRONTEND=noninteractive apt-get install -y -q " + list
	}
}

// version is a release's major.minor (a third part, as Alpine's 3.20.3
// has, is not compared).
type version struct{ major, minor int }

func parseVersion(s string) (version, error) {
	parts := strings.SplitN(s, ".", 3)
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return version{}, err
	}
	v := version{major: maj}
	if len(parts) > 1 {
		if v.minor, err = strconv.Atoi(parts[1]); err != nil {
			return version{}, err
		}
	}
	return v, nil
}

func (v version) less(w version) bool {
	return v.major < w.major || (v.major == w.major && v.minor < w.minor)
}

// trim drops the minor version when the bound has none (RHEL 9.4 is
// within "8–10", Debian 12.7 within "11–13").
func (v version) trim(bound version) version {
	if bound.minor == 0 {
		v.minor = 0
	}
	return v
}
