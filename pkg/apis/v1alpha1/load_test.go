package v1alpha1

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, doc, source string) *Cluster {
	t.Helper()
	c, ps, err := Parse([]byte(doc), source)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if _, w := Count(ps); w > 0 {
		t.Fatalf("%s: unexpected warnings:\n%s", source, problemList(ps))
	}
	return c
}

func TestSampleInventory(t *testing.T) {
	c := mustParse(t, string(SampleInventory), "sample.yaml")
	if got := [3]int{len(c.SLBs()), len(c.Masters()), len(c.Workers())}; got != [3]int{2, 3, 3} {
		t.Errorf("sample has %v slb/master/worker hosts, want 2/3/3", got)
	}
	if c.IsLightweight() || c.Spec.Etcd.Topology != EtcdStacked {
		t.Errorf("sample should be HA with stacked etcd: %+v", c.Spec.Etcd)
	}
}

// Every example must load without errors or warnings.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, ps, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) > 0 {
				t.Errorf("warnings:\n%s", problemList(ps))
			}
		})
	}
	ha, _, err := Load("../../../examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := [3]int{len(ha.SLBs()), len(ha.Masters()), len(ha.Workers())}; got != [3]int{2, 3, 3} {
		t.Errorf("ha.yaml has %v slb/master/worker hosts, want 2/3/3", got)
	}
	lw, _, err := Load("../../../examples/lightweight.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !lw.IsLightweight() || lw.APIServerEndpoint() != "10.0.0.21:6443" {
		t.Errorf("lightweight.yaml: lightweight=%v endpoint=%s", lw.IsLightweight(), lw.APIServerEndpoint())
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want a not-exist error, got %v", err)
	}
}

// One load reports every problem, each with path and line, source first.
func TestEveryProblemAtOnce(t *testing.T) {
	doc := `apiVersion: k4t.io/v1alpha1
kind: Cluster
spec:
  hosts:
    - name: m1
      adress: 10.0.0.21
      roles: [master]
    - {name: m2, address: 10.0.0.12, roles: [worker]}
    - {name: m3, address: 10.0.0.12, roles: [worker], port: many}
  preflight:
    ignoreErrors: [all]
`
	_, ps, err := Parse([]byte(doc), "hosts.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	want := []string{
		`spec.hosts[0].adress (line 6): unknown field "adress" (hint: did you mean "address"?)`,
		`spec.hosts[0].address (line 5): address is required`,
		`spec.hosts[2].address (line 9): duplicate address 10.0.0.12, also used by spec.hosts[1]`,
		`spec.hosts[2].port (line 9): expected a whole number, got "many"`,
		`spec.preflight.ignoreErrors[0] (line 11): ignoring all preflight errors is refused`,
	}
	text := err.Error()
	if !strings.HasPrefix(text, "hosts.yaml: 5 errors\n") {
		t.Errorf("error text should start with the source and count:\n%s", text)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("missing %q in\n%s", w, text)
		}
	}
	if len(ps) != len(want) || len(ve.Errors()) != len(want) {
		t.Errorf("want %d problems, got:\n%s", len(want), problemList(ps))
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Line < ps[i-1].Line {
			t.Errorf("problems not ordered by line:\n%s", problemList(ps))
		}
	}
}

func TestDocumentProblems(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"empty", "", 1, "empty"},
		{"comments only", "# nothing\n", 1, "empty"},
		{"empty document", "---\n", 1, "empty"},
		{"null document", "~\n", 1, "empty"},
		{"malformed", "apiVersion: k4t.io/v1alpha1\nkind: Cluster\nspec:\n  hosts:\n  - name: a\n   address: b\n", 6, "malformed YAML"},
		{"tab", "apiVersion: k4t.io/v1alpha1\nspec:\n\thosts: []\n", 3, "malformed YAML"},
		{"two documents", haBase + "---\n" + haBase, 15, "more than one YAML document"},
		{"not a mapping", "- a\n- b\n", 1, "expected a mapping"},
		{"broken second document", haBase + "---\n: : :\n  - x\n", 16, "malformed YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ps, err := Parse([]byte(tc.doc), "x.yaml")
			if err == nil || c != nil || len(ps) != 1 {
				t.Fatalf("want one problem, got %v\n%s", err, problemList(ps))
			}
			if ps[0].Line != tc.line || !strings.Contains(ps[0].Message, tc.msg) {
				t.Errorf("got %s, want line %d and %q", ps[0], tc.line, tc.msg)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, lightBase, "light")
	s := c.Spec
	h := s.Hosts[0]
	checks := map[string][2]any{
		"name":            {c.Metadata.Name, "k4t"},
		"port":            {h.Port, 22},
		"user":            {h.User, "root"},
		"internalAddress": {h.InternalAddress, "10.0.0.21"},
		"connectTimeout":  {h.SSH.ConnectTimeout.Duration, 10 * time.Second},
		"endpoint":        {c.APIServerEndpoint(), "10.0.0.21:6443"},
		"version":         {s.Kubernetes.Version, "v1.37.2"},
		"podCIDR":         {s.Kubernetes.PodCIDR, "10.244.0.0/16"},
		"serviceCIDR":     {s.Kubernetes.ServiceCIDR, "10.96.0.0/12"},
		"clusterDomain":   {s.Kubernetes.ClusterDomain, "cluster.local"},
		"topology":        {s.Etcd.Topology, EtcdStacked},
		"etcdVersion":     {s.Etcd.Version, "v3.6.16"},
		"dataDir":         {s.Etcd.DataDir, "/var/lib/etcd"},
		"plugin":          {s.Network.Plugin, "bridge"},
		"validity":        {s.Certificates.Validity.Duration, 8760 * time.Hour},
		"caValidity":      {s.Certificates.CAValidity.Duration, 87600 * time.Hour},
		"vrid":            {s.LoadBalancer.VirtualRouterID, 51},
		"vipPrefix":       {s.LoadBalancer.VIPPrefix, 24},
	}
	for name, gw := range checks {
		if gw[0] != gw[1] {
			t.Errorf("%s = %v, want %v", name, gw[0], gw[1])
		}
	}
	ext := mustParse(t, edit(t, lightBase, w1, w1+"    - {name: e1, address: 10.0.0.41, roles: [etcd]}\n"), "ext")
	if ext.Spec.Etcd.Topology != EtcdExternal {
		t.Errorf("topology with an etcd host = %s, want external", ext.Spec.Etcd.Topology)
	}
	hac := mustParse(t, haBase, "ha")
	if hac.APIServerEndpoint() != "10.0.0.100:6443" {
		t.Errorf("HA endpoint = %s", hac.APIServerEndpoint())
	}
	// Defaults never overwrite and are idempotent.
	before := *hac
	before.Spec.Hosts = append([]Host(nil), hac.Spec.Hosts...)
	hac.SetDefaults()
	if !reflect.DeepEqual(&before, hac) {
		t.Error("SetDefaults is not idempotent")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for name, doc := range map[string]string{"sample": string(SampleInventory), "ha": haBase, "light": lightBase} {
		c := mustParse(t, doc, name)
		out, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2 := mustParse(t, string(out), name+" marshalled")
		if !reflect.DeepEqual(c, c2) {
			t.Errorf("%s: round trip differs:\n%s", name, out)
		}
	}
}

// The yaml tags (for yaml.v3 users) must carry the json names Parse reads.
func TestYAMLTagsMatchJSON(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] || rt == durationType {
			return
		}
		seen[rt] = true
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Tag.Get("json") != f.Tag.Get("yaml") {
				t.Errorf("%s.%s: json tag %q, yaml tag %q", rt.Name(), f.Name, f.Tag.Get("json"), f.Tag.Get("yaml"))
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[Cluster]())
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Path: "a.b", Line: 3, Message: "m", Hint: "h"}, "a.b (line 3): m (hint: h)"},
		{Problem{Path: "a.b", Message: "m"}, "a.b: m"},
		{Problem{Line: 2, Message: "m"}, "(line 2): m"},
		{Problem{Message: "m"}, "m"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	e := &ValidationError{Source: "h.yaml", Problems: []Problem{{Path: "x", Line: 1, Severity: Error, Message: "bad"}, {Path: "y", Line: 2, Severity: Warning, Message: "meh"}}}
	if got, want := e.Error(), "h.yaml: 1 error, 1 warning\n  error: x (line 1): bad\n  warning: y (line 2): meh"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
