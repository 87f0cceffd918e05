package v1alpha1

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics; it fails only with a *ValidationError that
// lists at least one error, each problem on a line of the input; and a
// Cluster it accepts marshals and parses back to an equal Cluster.
func FuzzParse(f *testing.F) {
	f.Add(SampleInventory)
	f.Add([]byte(haBase))
	f.Add([]byte(lightBase))
	examples, _ := filepath.Glob("../../../examples/*.yaml")
	for _, e := range examples {
		if b, err := os.ReadFile(e); err == nil {
			f.Add(b)
		}
	}
	for _, tc := range ruleCases {
		f.Add([]byte(tc.doc(f)))
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("spec:\n  hosts: &h [{name: a}]\n  bastions: *h\n"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ps, err := Parse(data, "fuzz.yaml")
		// YAML breaks lines at \n, \r and the Unicode NEL, LS and PS too.
		lines := 1
		for _, sep := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
			lines += bytes.Count(data, []byte(sep))
		}
		utf16 := bytes.HasPrefix(data, []byte("\xfe\xff")) || bytes.HasPrefix(data, []byte("\xff\xfe")) // lines counted after decoding
		for _, p := range ps {
			if p.Line < 0 || (p.Line > lines && !utf16) {
				t.Fatalf("problem on line %d of a %d-line input: %s", p.Line, lines, p)
			}
			if p.Severity != Error && p.Severity != Warning {
				t.Fatalf("bad severity: %s", p)
			}
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || c != nil {
				t.Fatalf("want *ValidationError and nil cluster, got %T %v", err, c)
			}
			if e, _ := Count(ve.Problems); e == 0 {
				t.Fatalf("failed without an error problem: %v", err)
			}
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		c2, _, err := Parse(out, "marshalled.yaml")
		if err != nil {
			t.Fatalf("accepted input does not round-trip: %v\ninput:\n%s\nmarshalled:\n%s", err, data, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%#v\n%#v\nmarshalled:\n%s", c, c2, out)
		}
	})
}

// BenchmarkParse measures loading the sample inventory (8 hosts).
func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, _, err := Parse(SampleInventory, "sample.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
