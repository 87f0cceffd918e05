package v1alpha1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads an inventory file and parses it (see Parse).
func Load(path string) (*Cluster, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read inventory: %w (write one with 'k4t create config')", err)
	}
	return Parse(data, path)
}

// Parse decodes an inventory strictly (unknown or duplicate keys and wrongly
// typed values are problems), applies SetDefaults, then checks it with the
// rules of Validate. Every problem carries its field path and line; source
// (a file name) prefixes the error.
//
// When any problem is an Error, Parse returns a nil Cluster, every problem
// (warnings included, ordered by line) and a *ValidationError listing them
// all. Otherwise it returns the defaulted Cluster and the warnings.
func Parse(data []byte, source string) (*Cluster, []Problem, error) {
	c := &Cluster{}
	root, problems := parseYAML(data)
	if root != nil {
		d := &decoder{pos: positions{"": root.Line}}
		d.decode(root, reflect.ValueOf(c).Elem(), "", 0)
		problems = append(problems, d.problems...)
		if !d.stopped {
			problems = append(problems, explicitZeros(c, d.pos)...)
			c.SetDefaults()
			for _, p := range validate(c, d.pos) {
				if !underAny(p.Path, d.problems) {
					problems = append(problems, p)
				}
			}
		}
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	if errs, _ := Count(problems); errs > 0 {
		return nil, problems, &ValidationError{Source: source, Problems: problems}
	}
	return c, problems, nil
}

// explicitZeros reports durations written as zero where zero is no valid
// value: SetDefaults would silently replace them.
func explicitZeros(c *Cluster, pos positions) []Problem {
	var ps []Problem
	for p, d := range map[string]Duration{
		"spec.certificates.validity":   c.Spec.Certificates.Validity,
		"spec.certificates.caValidity": c.Spec.Certificates.CAValidity,
	} {
		if line, written := pos[p]; written && d.Duration == 0 {
			ps = append(ps, Problem{Path: p, Line: line, Severity: Error, Message: "a validity of zero is not positive",
				Hint: "remove it for the default, or write a duration such as 8760h"})
		}
	}
	if p := "spec.loadBalancer.advertInterval"; c.Spec.LoadBalancer.AdvertInterval.Duration == 0 {
		if line, written := pos[p]; written {
			ps = append(ps, Problem{Path: p, Line: line, Severity: Error, Message: "an advert interval of zero is not positive",
				Hint: "remove it for the default (1s), or write e.g. 200ms with vrrpVersion: 3"})
		}
	}
	return ps
}

// underAny reports whether path is at or below the path of a decoding
// problem: its value was not read, so a rule about it would only repeat that.
func underAny(path string, ps []Problem) bool {
	for _, p := range ps {
		if p.Path == "" || path == p.Path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") {
			return true
		}
	}
	return false
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parseYAML returns the single document's root node, or the problems that
// keep it from being read.
func parseYAML(data []byte) (root *yaml.Node, problems []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := safeDecode(dec, &doc)
	if errors.Is(err, io.EOF) || (err == nil && (len(doc.Content) == 0 || isNull(doc.Content[0]))) {
		return nil, []Problem{{Line: 1, Severity: Error, Message: "the inventory is empty",
			Hint: "write one with 'k4t create config'"}}
	}
	if err != nil {
		return nil, []Problem{yamlProblem(data, err)}
	}
	var extra yaml.Node
	switch err := safeDecode(dec, &extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, []Problem{yamlProblem(data, err)}
	default:
		return nil, []Problem{{Line: extra.Line, Severity: Error, Message: "more than one YAML document ('---') in the inventory",
			Hint: "keep one Cluster per file"}}
	}
	return doc.Content[0], nil
}

// safeDecode turns a panic inside the YAML parser into an error: a
// malformed file must never crash the tool.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot parse: %v", r)
		}
	}()
	return dec.Decode(n)
}

func yamlProblem(data []byte, err error) Problem {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		line = firstBadLine(data, line)
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return Problem{Line: line, Severity: Error, Message: "malformed YAML: " + msg,
		Hint: "check indentation (spaces, not tabs) and quoting around that line"}
}

// firstBadLine narrows the line of a YAML syntax error. The parser names
// the line where the enclosing block began ("did not find expected key" on
// "spec:"); the first line at which the document's prefix stops parsing is
// where the mistake is. Prefixes cut at a line end parse whenever the whole
// would, so a binary search over [from, last line] finds it.
func firstBadLine(data []byte, from int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if from < 1 || from > len(lines) {
		return from
	}
	lo, hi := from, len(lines)
	if !prefixFails(lines, hi) {
		return from
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if prefixFails(lines, mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// prefixFails reports whether the first n lines fail to parse as YAML.
func prefixFails(lines [][]byte, n int) bool {
	dec := yaml.NewDecoder(bytes.NewReader(bytes.Join(lines[:n], nil)))
	for {
		var doc yaml.Node
		switch err := safeDecode(dec, &doc); {
		case errors.Is(err, io.EOF):
			return false
		case err != nil:
			return true
		}
	}
}

// Marshal writes c as inventory YAML (two-space indent) that Parse reads
// back to an equal Cluster.
func Marshal(c *Cluster) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("marshal inventory: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal inventory: %w", err)
	}
	return b.Bytes(), nil
}
