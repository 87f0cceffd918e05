package hostos

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectRealReleases runs Detect on /etc/os-release files as the
// distributions ship them (testdata/os-release, sources in SOURCES.md).
func TestDetectRealReleases(t *testing.T) {
	for _, tc := range []struct {
		file    string
		family  Family
		pkg     string
		init    string
		refused string // part of the error; "" when supported
	}{
		{"debian-11", Debian, "apt-get", "systemd", ""},
		{"debian-12", Debian, "apt-get", "systemd", ""},
		{"debian-13", Debian, "apt-get", "systemd", ""},
		{"ubuntu-22.04", Ubuntu, "apt-get", "systemd", ""},
		{"ubuntu-24.04", Ubuntu, "apt-get", "systemd", ""},
		{"ubuntu-26.04", Ubuntu, "apt-get", "systemd", ""},
		{"rhel-8.10", RHEL, "dnf", "systemd", ""},
		{"rhel-9.4", RHEL, "dnf", "systemd", ""},
		{"rhel-10.0", RHEL, "dnf", "systemd", ""},
		{"rocky-8.10", RHEL, "dnf", "systemd", ""},
		{"rocky-9.4", RHEL, "dnf", "systemd", ""},
		{"rocky-10.0", RHEL, "dnf", "systemd", ""},
		{"almalinux-8.10", RHEL, "dnf", "systemd", ""}, // no newline at its end, as shipped
		{"almalinux-9.4", RHEL, "dnf", "systemd", ""},
		{"almalinux-10.0", RHEL, "dnf", "systemd", ""},
		{"centos-8", RHEL, "dnf", "systemd", ""}, // CentOS Stream
		{"centos-9", RHEL, "dnf", "systemd", ""},
		{"centos-10", RHEL, "dnf", "systemd", ""},
		{"alpine-3.19.8", Alpine, "apk", "openrc", ""},
		{"alpine-3.20.7", Alpine, "apk", "openrc", ""},
		{"alpine-3.21.4", Alpine, "apk", "openrc", ""},
		{"alpine-3.22.1", Alpine, "apk", "openrc", ""},
		{"centos-7", RHEL, "dnf", "systemd", "end of life (7 ended on 2024-06-30)"},
		{"fedora-42", RHEL, "dnf", "systemd", "Fedora Linux 42 (Forty Two) is not a distribution k4t supports"},
		{"opensuse-leap-15.6", Debian, "apt-get", "systemd", "openSUSE Leap 15.6 is not a distribution k4t supports"},
		{"arch", Debian, "apt-get", "systemd", "Arch Linux is not a distribution k4t supports"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "os-release", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Detect(ParseRelease(b))
			if got.Family != tc.family || got.PkgManager != tc.pkg || got.Init != tc.init {
				t.Errorf("family %s, package manager %s, init %s; want %s, %s, %s", got.Family, got.PkgManager, got.Init, tc.family, tc.pkg, tc.init)
			}
			if tc.refused == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			var ue *UnsupportedError
			if !errors.As(err, &ue) || !strings.Contains(ue.Reason, tc.refused) {
				t.Fatalf("error %v, want an *UnsupportedError saying %q", err, tc.refused)
			}
			if tc.file == "centos-7" {
				if !ue.Final {
					t.Error("CentOS 7's refusal can be overridden with --force-os")
				}
				if !strings.Contains(ue.Hint, "Rocky Linux or AlmaLinux 8") || !strings.Contains(ue.Reason, "glibc") || !strings.Contains(ue.Reason, "cgroup v1") {
					t.Errorf("CentOS 7: %s — %s", ue.Reason, ue.Hint)
				}
			} else if !strings.Contains(ue.Hint, "Debian 11–13; Ubuntu 22.04–26.04; RHEL, Rocky, AlmaLinux and CentOS Stream 8–10; Alpine 3.19 or later") || !strings.Contains(ue.Hint, "--force-os") {
				t.Errorf("hint does not list the supported releases and --force-os: %s", ue.Hint)
			}
		})
	}
}

func TestDetectVersionBounds(t *testing.T) {
	for _, tc := range []struct {
		r       Release
		refused string
	}{
		{Release{ID: "debian", VersionID: "10"}, "older than k4t supports (Debian 11–13)"},
		{Release{ID: "debian", VersionID: "14"}, "newer than k4t has been tried on"},
		{Release{ID: "debian"}, "debian has no VERSION_ID (a testing or rolling release?)"}, // as testing and sid
		{Release{ID: "alpine", VersionID: "3.23_alpha20250108"}, "cannot read its version"}, // edge
		{Release{ID: "ubuntu", VersionID: "20.04"}, "older"},
		{Release{ID: "ubuntu", VersionID: "26.10"}, "newer"},
		{Release{ID: "rocky", VersionID: "9.6"}, ""},
		{Release{ID: "rhel", VersionID: "11.0"}, "newer"},
		{Release{ID: "centos", VersionID: "6"}, "end of life"},
		{Release{ID: "alpine", VersionID: "3.18.4"}, "older"},
		{Release{ID: "alpine", VersionID: "3.23.0"}, ""},
		{Release{}, "an unknown distribution (no /etc/os-release) is not a distribution k4t supports"},
		{Release{ID: "linuxmint", IDLike: "ubuntu debian", VersionID: "22", PrettyName: "Linux Mint 22"}, "Linux Mint 22 is not"},
	} {
		got, err := Detect(tc.r)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%+v: refused: %v", tc.r, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%+v: error %v, want %q", tc.r, err, tc.refused)
		}
		if tc.r.ID == "linuxmint" && got.Family != Ubuntu {
			t.Errorf("Linux Mint guessed as %s, want ubuntu (its ID_LIKE)", got.Family)
		}
	}
}

func TestParseRelease(t *testing.T) {
	r := ParseRelease([]byte("# comment\nID=\"rocky\"\nID_LIKE='rhel centos fedora'\nVERSION_ID=9.4\nPRETTY_NAME=\"Rocky \\\"Blue\\\" Onyx\"\nBROKEN\n"))
	want := Release{ID: "rocky", IDLike: "rhel centos fedora", VersionID: "9.4", PrettyName: `Rocky "Blue" Onyx`}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
}

func TestInstallCommand(t *testing.T) {
	for fam, want := range map[Family]string{
		Debian: "DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy keepalived",
		RHEL:   "dnf install -y haproxy keepalived",
		Alpine: "apk add --no-cache haproxy keepalived",
	} {
		if got := withFamily(Release{}, fam).InstallCommand("haproxy", "keepalived"); got != want {
			t.Errorf("%s: %q, want %q", fam, got, want)
		}
	}
}
