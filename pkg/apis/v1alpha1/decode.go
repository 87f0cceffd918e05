package v1alpha1

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// positions maps a field path ("spec.hosts[2].address") to the line it was
// written on: the key's line for a field, the item's line for a list item.
type positions map[string]int

// line returns the line of path, or of its nearest parent that was written
// (a missing field is reported on the line of the object that lacks it).
func (p positions) line(path string) int {
	for {
		if l, ok := p[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndex(path, "["); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

func fieldPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func itemPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func keyPath(parent, key string) string { return parent + "[" + strconv.Quote(key) + "]" }

// maxNodes bounds the work of expanding YAML aliases ("billion laughs").
const maxNodes = 200000

// decoder fills Go values from a yaml.Node tree strictly: unknown and
// duplicate keys and wrongly typed values become Problems with path and line;
// it goes on after each one so that every problem is reported at once.
type decoder struct {
	pos      positions
	problems []Problem
	nodes    int
	stopped  bool
}

func (d *decoder) errorf(path string, line int, hint, format string, a ...any) {
	d.problems = append(d.problems, Problem{Path: path, Line: line, Severity: Error, Message: fmt.Sprintf(format, a...), Hint: hint})
}

var (
	durationType  = reflect.TypeFor[Duration]()
	secretRefType = reflect.TypeFor[SecretRef]()
)

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decode fills v (addressable) from n; path names v.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if d.stopped {
		return
	}
	d.nodes++
	if d.nodes > maxNodes || depth > 64 {
		d.errorf(path, n.Line, "write the inventory without deeply nested aliases", "document too large once YAML aliases are expanded")
		d.stopped = true
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(path, n.Line, "", "alias to an unknown anchor")
			return
		}
		d.decode(n.Alias, v, path, depth+1)
		return
	}
	if isNull(n) {
		return // absent and null are the same: the default applies
	}
	t := v.Type()
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			d.errorf(path, n.Line, `write it like "90s", "2h", "720h" or "30d"`, "expected a duration, got %s", kindName(n))
			return
		}
		dur, err := ParseDuration(n.Value)
		if err != nil {
			d.errorf(path, n.Line, `write it like "90s", "2h", "720h" or "30d"`, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	case t.Kind() == reflect.Pointer:
		if t.Elem() == secretRefType && n.Kind != yaml.MappingNode {
			d.errorf(path, n.Line, "use {env: VARIABLE} or {file: /path/to/file}",
				"secrets are never written inline in the inventory; got %s", kindName(n))
			return
		}
		nv := reflect.New(t.Elem())
		d.decode(n, nv.Elem(), path, depth+1)
		v.Set(nv)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(path, n.Line, "write a list, one '- item' a line", "expected a list, got %s", kindName(n))
			return
		}
		if len(n.Content) == 0 {
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := itemPath(path, i)
			d.pos[p] = item.Line
			d.decode(item, s.Index(i), p, depth+1)
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path, depth)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || !plainTag(n.ShortTag()) {
			d.errorf(path, n.Line, "", "expected a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || i > math.MaxInt32 || i < math.MinInt32 {
			d.errorf(path, n.Line, "", "expected a whole number, got %s", kindName(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errorf(path, n.Line, "write true or false", "expected true or false, got %s", kindName(n))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("v1alpha1: no decoder for %s at %s", t, path))
	}
}

// plainTag reports whether a scalar with this tag may be read as a string:
// "version: 1.37" is the string "1.37", later rejected by validation with a
// precise message rather than a type error.
func plainTag(tag string) bool {
	switch tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return true
	}
	return false
}

// mappingPairs checks that n is a mapping whose keys are distinct scalars and
// calls f for each key and value; child names a key's path.
func (d *decoder) mappingPairs(n *yaml.Node, path string, child func(parent, key string) string, f func(key string, k, val *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.errorf(path, n.Line, "write key: value lines", "expected a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(path, k.Line, "", "a key must be a plain word, got %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(child(path, k.Value), k.Line, "remove one of them", "duplicate key %q, first written on line %d", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		f(k.Value, k, val)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	fields := fieldsOf(v.Type())
	d.mappingPairs(n, path, fieldPath, func(key string, k, val *yaml.Node) {
		idx, ok := fields.index[key]
		if !ok {
			p := fieldPath(path, key)
			hint := "valid keys here: " + strings.Join(fields.names, ", ")
			if s := closest(key, fields.names); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			if key == "<<" {
				hint = "YAML merge keys are not supported; repeat the fields or use a plain alias"
			}
			d.errorf(p, k.Line, hint, "unknown field %q", key)
			return
		}
		p := fieldPath(path, key)
		d.pos[p] = k.Line
		d.decode(val, v.Field(idx), p, depth+1)
	})
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		panic(fmt.Sprintf("v1alpha1: no decoder for %s at %s", t, path))
	}
	m := reflect.MakeMap(t)
	d.mappingPairs(n, path, keyPath, func(key string, k, val *yaml.Node) {
		p := keyPath(path, key)
		d.pos[p] = k.Line
		e := reflect.New(t.Elem()).Elem()
		d.decode(val, e, p, depth+1)
		m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
	})
	if m.Len() > 0 {
		v.Set(m)
	}
}

type structFields struct {
	index map[string]int // yaml key -> field index
	names []string       // yaml keys in declaration order
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf lists the keys of a struct type from its json tags (the yaml tags
// carry the same names; a test keeps them equal).
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: map[string]int{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	fieldCache.Store(t, f)
	return f
}

// closest returns the candidate nearest to s (case-insensitive equality, or
// an edit distance of at most 2), or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		if dist := editDistance(strings.ToLower(s), strings.ToLower(c)); dist < bestD {
			best, bestD = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
