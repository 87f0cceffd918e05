package v1alpha1

import (
	"fmt"
	"strings"
)

// Severity says whether a Problem stops loading.
type Severity string

const (
	// Error problems make Load and Parse fail.
	Error Severity = "error"
	// Warning problems are returned but do not stop loading.
	Warning Severity = "warning"
)

// Problem is one thing wrong (or worth a look) in an inventory.
type Problem struct {
	// Path is the field path, e.g. "spec.hosts[2].address"; empty for the
	// document as a whole (e.g. malformed YAML).
	Path string `json:"path,omitempty"`
	// Line is the 1-based line in the source, 0 when unknown (a Cluster
	// built in code).
	Line     int      `json:"line,omitempty"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	// Hint says how to fix it; may be empty.
	Hint string `json:"hint,omitempty"`
}

// String is "spec.hosts[2].address (line 14): duplicate address ... (hint: ...)".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Path)
	if p.Line > 0 {
		if p.Path != "" {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "(line %d)", p.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(p.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// ValidationError is returned by Load and Parse when at least one Problem is
// an Error. It carries every problem found, warnings included.
type ValidationError struct {
	// Source names the input (a file name), as given to Parse or Load.
	Source   string
	Problems []Problem
}

// Error prints the source and a count on the first line, then one problem a
// line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	errs, warns := Count(e.Problems)
	src := e.Source
	if src == "" {
		src = "inventory"
	}
	fmt.Fprintf(&b, "%s: %d %s", src, errs, plural(errs, "error"))
	if warns > 0 {
		fmt.Fprintf(&b, ", %d %s", warns, plural(warns, "warning"))
	}
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Severity, p.String())
	}
	return b.String()
}

// Errors returns only the problems of severity Error.
func (e *ValidationError) Errors() []Problem {
	var out []Problem
	for _, p := range e.Problems {
		if p.Severity == Error {
			out = append(out, p)
		}
	}
	return out
}

// Count returns how many problems are errors and how many are warnings.
func Count(ps []Problem) (errs, warns int) {
	for _, p := range ps {
		if p.Severity == Error {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
