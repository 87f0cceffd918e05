package v1alpha1

import (
	"encoding/json"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s":    90 * time.Second,
		"2h":     2 * time.Hour,
		"720h":   720 * time.Hour,
		"30d":    30 * 24 * time.Hour,
		"1d12h":  36 * time.Hour,
		"0":      0,
		"-1d":    -24 * time.Hour,
		"1h30m":  90 * time.Minute,
		"1.5h":   90 * time.Minute,
		"+10s":   10 * time.Second,
		"3650d":  3650 * 24 * time.Hour,
		"500ms":  500 * time.Millisecond,
		"0d":     0,
		"1d0.5h": 24*time.Hour + 30*time.Minute,
	} {
		got, err := ParseDuration(in)
		if err != nil || got.Duration != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "1y", "100", "1d-1h", "--1h", "999999999999d", "106751d23h47m16.854775808s", "-"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "0s",
		90 * time.Second:        "1m30s",
		720 * time.Hour:         "720h",
		time.Hour + time.Second: "1h0m1s",
		90 * time.Minute:        "1h30m",
		10 * time.Minute:        "10m",
		1500 * time.Millisecond: "1.5s",
		-24 * time.Hour:         "-24h",
	} {
		if got := (Duration{d}).String(); got != want {
			t.Errorf("%v: got %q, want %q", time.Duration(d), got, want)
		}
		back, err := ParseDuration(want)
		if err != nil || back.Duration != d {
			t.Errorf("%q does not read back: %v, %v", want, back, err)
		}
	}
}

func TestDurationJSONYAML(t *testing.T) {
	type doc struct {
		D Duration `json:"d" yaml:"d"`
	}
	b, err := json.Marshal(doc{Duration{720 * time.Hour}})
	if err != nil || string(b) != `{"d":"720h"}` {
		t.Fatalf("json: %s, %v", b, err)
	}
	var j doc
	if err := json.Unmarshal([]byte(`{"d":"30d"}`), &j); err != nil || j.D.Duration != 720*time.Hour {
		t.Fatalf("json unmarshal: %v, %v", j.D, err)
	}
	if err := json.Unmarshal([]byte(`{"d":30}`), &j); err == nil {
		t.Error("json: a number must be refused")
	}
	if err := json.Unmarshal([]byte(`{"d":"30x"}`), &j); err == nil {
		t.Error("json: a bad unit must be refused")
	}
	y, err := yaml.Marshal(doc{Duration{90 * time.Second}})
	if err != nil || string(y) != "d: 1m30s\n" {
		t.Fatalf("yaml: %q, %v", y, err)
	}
	var yd doc
	if err := yaml.Unmarshal([]byte("d: 2d\n"), &yd); err != nil || yd.D.Duration != 48*time.Hour {
		t.Fatalf("yaml unmarshal: %v, %v", yd.D, err)
	}
	for _, bad := range []string{"d: [1]\n", "d: 2y\n"} {
		if err := yaml.Unmarshal([]byte(bad), &yd); err == nil {
			t.Errorf("yaml %q: want an error", bad)
		}
	}
}
