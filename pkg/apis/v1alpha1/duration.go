package v1alpha1

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as Go writes durations ("90s", "2h",
// "720h", "1h30m") or with a leading whole number of days ("30d", "1d12h").
// It marshals to the shortest Go form in hours and below ("720h", "1h30m").
type Duration struct{ time.Duration }

// ParseDuration reads "90s", "2h", "720h", "30d" or "1d12h".
func ParseDuration(s string) (Duration, error) {
	in := s
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	} else {
		s = strings.TrimPrefix(s, "+")
	}
	var days int64
	hasDays := false
	if i := strings.IndexByte(s, 'd'); i > 0 {
		hasDays = true
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 {
			return Duration{}, fmt.Errorf("invalid duration %q: days must be a whole number, as in \"30d\"", in)
		}
		if n > math.MaxInt64/int64(24*time.Hour) {
			return Duration{}, fmt.Errorf("invalid duration %q: too long", in)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" || !hasDays {
		if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
			return Duration{}, fmt.Errorf("invalid duration %q: a sign may only lead", in)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return Duration{}, fmt.Errorf("invalid duration %q: write it like \"90s\", \"2h\", \"720h\" or \"30d\"", in)
		}
		rest = d
	}
	total := time.Duration(days) * 24 * time.Hour
	if rest > math.MaxInt64-total {
		return Duration{}, fmt.Errorf("invalid duration %q: too long", in)
	}
	total += rest
	if neg {
		total = -total
	}
	return Duration{total}, nil
}

// String writes d the way Go does, without trailing zero units: "720h",
// "1h30m", "90s" reads back as "1m30s".
func (d Duration) String() string {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalJSON writes d as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string (see ParseDuration).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"720h\": %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a YAML string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a YAML scalar (see ParseDuration).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a string such as \"720h\"", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}
