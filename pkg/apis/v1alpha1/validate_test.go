package v1alpha1

import (
	"errors"
	"strings"
	"testing"
)

// haBase is a small valid HA inventory. Cases edit it and mark the line the
// problem must be reported on with "#<-".
const haBase = `apiVersion: k4t.io/v1alpha1
kind: Cluster
metadata:
  name: t
spec:
  hosts:
    - {name: slb1, address: 10.0.0.11, roles: [slb]}
    - {name: slb2, address: 10.0.0.12, roles: [slb]}
    - {name: m1, address: 10.0.0.21, roles: [master]}
    - {name: m2, address: 10.0.0.22, roles: [master]}
    - {name: m3, address: 10.0.0.23, roles: [master]}
    - {name: w1, address: 10.0.0.31, roles: [worker]}
  controlPlaneEndpoint:
    address: 10.0.0.100
`

// lightBase is a valid lightweight inventory (no slb hosts).
const lightBase = `apiVersion: k4t.io/v1alpha1
kind: Cluster
spec:
  hosts:
    - {name: m1, address: 10.0.0.21, roles: [master]}
    - {name: w1, address: 10.0.0.31, roles: [worker]}
`

// edit replaces old (which must occur exactly once) in doc with new.
func edit(t testing.TB, doc, old, new string) string {
	t.Helper()
	if n := strings.Count(doc, old); n != 1 {
		t.Fatalf("edit: %q occurs %d times in the base document", old, n)
	}
	return strings.Replace(doc, old, new, 1)
}

// markedLine is the 1-based line holding "#<-".
func markedLine(t testing.TB, doc string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, "#<-") {
			return i + 1
		}
	}
	t.Fatalf("no #<- marker in:\n%s", doc)
	return 0
}

type ruleCase struct {
	name string
	doc  func(t testing.TB) string
	path string
	sev  Severity
	msg  string // substring of the message
}

// ha edits haBase: pairs of old, new.
func ha(pairs ...string) func(t testing.TB) string { return editFn(haBase, pairs) }

func light(pairs ...string) func(t testing.TB) string { return editFn(lightBase, pairs) }

func editFn(base string, pairs []string) func(t testing.TB) string {
	return func(t testing.TB) string {
		doc := base
		for i := 0; i+1 < len(pairs); i += 2 {
			doc = edit(t, doc, pairs[i], pairs[i+1])
		}
		return doc
	}
}

// haPlus appends lines to the spec of haBase.
func haPlus(extra string) func(t testing.TB) string { return appendTo(ha(), extra) }

func appendTo(f func(t testing.TB) string, extra string) func(t testing.TB) string {
	return func(t testing.TB) string { return f(t) + extra }
}

const (
	m1 = "    - {name: m1, address: 10.0.0.21, roles: [master]}\n"
	m2 = "    - {name: m2, address: 10.0.0.22, roles: [master]}\n"
	m3 = "    - {name: m3, address: 10.0.0.23, roles: [master]}\n"
	w1 = "    - {name: w1, address: 10.0.0.31, roles: [worker]}\n"
	s1 = "    - {name: slb1, address: 10.0.0.11, roles: [slb]}\n"
	s2 = "    - {name: slb2, address: 10.0.0.12, roles: [slb]}\n"
)

var ruleCases = []ruleCase{
	// document header
	{"apiVersion", ha("apiVersion: k4t.io/v1alpha1", "apiVersion: k4t.io/v1 #<-"), "apiVersion", Error, `apiVersion must be "k4t.io/v1alpha1"`},
	{"kind", ha("kind: Cluster", "kind: Klaster #<-"), "kind", Error, `kind must be "Cluster"`},
	{"cluster name not DNS label", ha("name: t", "name: My_Cluster #<-"), "metadata.name", Error, "not a DNS label"},

	// hosts
	{"no hosts", light("  hosts:\n"+"    - {name: m1, address: 10.0.0.21, roles: [master]}\n"+"    - {name: w1, address: 10.0.0.31, roles: [worker]}\n", "  hosts: [] #<-\n"), "spec.hosts", Error, "no hosts"},
	{"duplicate host name", ha(m2, "    - {name: m1, address: 10.0.0.22, roles: [master]} #<-\n"), "spec.hosts[3].name", Error, `duplicate host name "m1", also used by spec.hosts[2]`},
	{"duplicate address", ha(m2, "    - {name: m2, address: 10.0.0.21, roles: [master]} #<-\n"), "spec.hosts[3].address", Error, "duplicate address 10.0.0.21, also used by spec.hosts[2]"},
	{"duplicate internal address", ha(m2, "    - {name: m2, address: 10.0.0.22, internalAddress: 10.0.0.21, roles: [master]} #<-\n"), "spec.hosts[3].internalAddress", Error, "duplicate internal address 10.0.0.21, also used by spec.hosts[2]"},
	{"host name not DNS label", ha(w1, "    - {name: Worker_1, address: 10.0.0.31, roles: [worker]} #<-\n"), "spec.hosts[5].name", Error, "not a DNS label"},
	{"host name missing", ha(w1, "    - {address: 10.0.0.31, roles: [worker]} #<-\n"), "spec.hosts[5].name", Error, "name is required"},
	{"host address missing", ha(w1, "    - {name: w1, roles: [worker]} #<-\n"), "spec.hosts[5].address", Error, "address is required"},
	{"host address invalid", ha(w1, "    - {name: w1, address: 'not an address', roles: [worker]} #<-\n"), "spec.hosts[5].address", Error, "neither an IP address nor a DNS name"},
	{"internal address not IP", ha(w1, "    - {name: w1, address: w1.example.com, roles: [worker]} #<-\n"), "spec.hosts[5].internalAddress", Error, "not an IP address"},
	{"unknown role", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker, wroker]} #<-\n"), "spec.hosts[5].roles[1]", Error, `unknown role "wroker"`},
	{"no role", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: []} #<-\n"), "spec.hosts[5].roles", Error, "has no role"},
	{"role missing", ha(w1, "    - {name: w1, address: 10.0.0.31} #<-\n"), "spec.hosts[5].roles", Error, "has no role"},
	{"role twice", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker, worker]} #<-\n"), "spec.hosts[5].roles[1]", Warning, "listed twice"},
	{"host port range", ha(w1, "    - {name: w1, address: 10.0.0.31, port: 70000, roles: [worker]} #<-\n"), "spec.hosts[5].port", Error, "port 70000 is out of range"},
	{"host port negative", ha(w1, "    - {name: w1, address: 10.0.0.31, port: -1, roles: [worker]} #<-\n"), "spec.hosts[5].port", Error, "out of range"},
	{"label key", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], labels: {'bad key': x}} #<-\n"), `spec.hosts[5].labels["bad key"]`, Error, "label key"},
	{"label value", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], labels: {zone: 'a b'}} #<-\n"), `spec.hosts[5].labels["zone"]`, Error, "label value"},
	{"label prefix", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], labels: {'Ex_ample/zone': a}} #<-\n"), `spec.hosts[5].labels["Ex_ample/zone"]`, Error, "invalid prefix"},
	{"control character", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {keyFile: \"a\\nb\"}} #<-\n"), "spec.hosts[5].ssh.keyFile", Error, "control character"},
	{"non-root without sudo", ha(w1, "    - {name: w1, address: 10.0.0.31, user: ops, roles: [worker]} #<-\n"), "spec.hosts[5].user", Warning, "not root"},
	{"sudo password without sudo", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], sudo: {password: {env: P}}} #<-\n"), "spec.hosts[5].sudo.password", Warning, "sudo is not enabled"},
	{"negative connect timeout", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {connectTimeout: -5s}} #<-\n"), "spec.hosts[5].ssh.connectTimeout", Error, "negative"},

	// secrets
	{"secret with env and file", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {password: {env: P, file: /p}}} #<-\n"), "spec.hosts[5].ssh.password", Error, "exactly one of env and file"},
	{"secret empty", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {password: {}}} #<-\n"), "spec.hosts[5].ssh.password", Error, "exactly one of env and file"},
	{"secret inline", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {password: hunter2}} #<-\n"), "spec.hosts[5].ssh.password", Error, "never written inline"},
	{"vrrp secret", haPlus("  loadBalancer:\n    authPassword: {env: A, file: /a} #<-\n"), "spec.loadBalancer.authPassword", Error, "exactly one of env and file"},

	// bastions
	{"bastion undefined", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {bastion: jump}} #<-\n"), "spec.hosts[5].ssh.bastion", Error, `bastion "jump" is not defined`},
	{"bastion cycle", haPlus("  bastions:\n    - {name: a, address: 10.1.0.1, ssh: {bastion: b}} #<-\n    - {name: b, address: 10.1.0.2, ssh: {bastion: a}}\n"), "spec.bastions[0].ssh.bastion", Error, "loops: a -> b -> a"},
	{"bastion self cycle", haPlus("  bastions:\n    - {name: a, address: 10.1.0.1}\n    - {name: b, address: 10.1.0.2, ssh: {bastion: b}} #<-\n"), "spec.bastions[1].ssh.bastion", Error, "loops: b -> b"},
	{"bastion chain to undefined", haPlus("  bastions:\n    - {name: a, address: 10.1.0.1, ssh: {bastion: zz}} #<-\n"), "spec.bastions[0].ssh.bastion", Error, `bastion "zz" is not defined`},
	{"bastion duplicate name", haPlus("  bastions:\n    - {name: a, address: 10.1.0.1}\n    - {name: a, address: 10.1.0.2} #<-\n"), "spec.bastions[1].name", Error, "duplicate bastion name"},
	{"bastion port", haPlus("  bastions:\n    - {name: a, address: 10.1.0.1, port: 0x10000} #<-\n"), "spec.bastions[0].port", Error, "out of range"},
	{"bastion address", haPlus("  bastions:\n    - name: a #<-\n"), "spec.bastions[0].address", Error, "address is required"},

	// masters and etcd
	{"no master", light(m1, "    - {name: m1, address: 10.0.0.21, roles: [worker]}\n", "  hosts:", "  hosts: #<-"), "spec.hosts", Error, "no host has role master"},
	{"stacked even", ha(m3, "", m2, "    - {name: m2, address: 10.0.0.22, roles: [master]} #<-\n"), "spec.hosts[3].roles", Error, "etcd would have 2 members (stacked: m1, m2)"},
	{"external even", ha(w1, w1+"    - {name: e1, address: 10.0.0.41, roles: [etcd]}\n    - {name: e2, address: 10.0.0.42, roles: [etcd]} #<-\n"), "spec.hosts[7].roles", Error, "etcd would have 2 members (external: e1, e2)"},
	{"external without etcd hosts", haPlus("  etcd:\n    topology: external #<-\n"), "spec.etcd.topology", Error, "no host has role etcd"},
	{"stacked with etcd hosts", appendTo(ha(w1, w1+"    - {name: e1, address: 10.0.0.41, roles: [etcd]}\n"), "  etcd:\n    topology: stacked #<-\n"), "spec.etcd.topology", Error, "e1 has role etcd"},
	{"unknown topology", haPlus("  etcd:\n    topology: remote #<-\n"), "spec.etcd.topology", Error, `unknown etcd topology "remote"`},
	{"etcd version", haPlus("  etcd:\n    version: 3.6.16 #<-\n"), "spec.etcd.version", Error, "not of the form vX.Y.Z"},
	{"etcd data dir", haPlus("  etcd:\n    dataDir: var/lib/etcd #<-\n"), "spec.etcd.dataDir", Error, "not an absolute path"},

	// endpoint and slb
	{"VIP missing", ha("  controlPlaneEndpoint:\n    address: 10.0.0.100\n", "  controlPlaneEndpoint: {port: 6443} #<-\n"), "spec.controlPlaneEndpoint.address", Error, "VIP is required"},
	{"VIP not IP", ha("address: 10.0.0.100", "address: vip.example.com #<-"), "spec.controlPlaneEndpoint.address", Error, "not an IP address"},
	{"VIP outside subnet", ha("address: 10.0.0.100", "address: 10.0.1.100 #<-"), "spec.controlPlaneEndpoint.address", Error, `outside 10.0.1.0/24, the subnet of slb host "slb1"`},
	{"VIP is a host address", ha("address: 10.0.0.100", "address: 10.0.0.31 #<-"), "spec.controlPlaneEndpoint.address", Error, "VIP 10.0.0.31 is the address of spec.hosts[5]"},
	{"VIP is a network address", ha("address: 10.0.0.100", "address: 10.0.0.0 #<-"), "spec.controlPlaneEndpoint.address", Error, "network or broadcast"},
	{"VIP prefix range", haPlus("  loadBalancer:\n    vipPrefix: 33 #<-\n"), "spec.loadBalancer.vipPrefix", Error, "out of range"},
	{"endpoint port", ha("address: 10.0.0.100", "address: 10.0.0.100\n    port: 65536 #<-"), "spec.controlPlaneEndpoint.port", Error, "out of range"},
	{"one slb", ha(s2, "", s1, "    - {name: slb1, address: 10.0.0.11, roles: [slb]} #<-\n"), "spec.hosts[0].roles", Warning, "no failover"},
	{"one master with slbs", ha(m2, "", m3, "", m1, "    - {name: m1, address: 10.0.0.21, roles: [master]} #<-\n"), "spec.hosts[2].roles", Warning, "not highly available"},
	{"slb and master", ha(m3, "    - {name: m3, address: 10.0.0.23, roles: [master, slb]} #<-\n"), "spec.hosts[4].roles", Error, "both slb and master"},
	{"virtual router id", haPlus("  loadBalancer:\n    virtualRouterID: 256 #<-\n"), "spec.loadBalancer.virtualRouterID", Error, "out of range"},
	{"VRRP version", haPlus("  loadBalancer:\n    vrrpVersion: 4 #<-\n"), "spec.loadBalancer.vrrpVersion", Error, "unknown"},
	{"sub-second adverts need VRRPv3", haPlus("  loadBalancer:\n    advertInterval: 200ms #<-\n"), "spec.loadBalancer.advertInterval", Error, "not whole seconds"},
	{"VRRPv3 advert range", haPlus("  loadBalancer:\n    vrrpVersion: 3\n    advertInterval: 5ms #<-\n"), "spec.loadBalancer.advertInterval", Error, "not a multiple of 10ms"},
	{"zero adverts", haPlus("  loadBalancer:\n    advertInterval: 0s #<-\n"), "spec.loadBalancer.advertInterval", Error, "not positive"},
	{"VRRPv3 ignores the password", haPlus("  loadBalancer:\n    vrrpVersion: 3\n    authPassword: {env: VRRP} #<-\n"), "spec.loadBalancer.authPassword", Warning, "not used"},
	{"interface", haPlus("  loadBalancer:\n    interface: 'eth 0' #<-\n"), "spec.loadBalancer.interface", Error, "not a valid interface name"},
	{"lightweight several masters", light(m1, m1+"    - {name: m2, address: 10.0.0.22, roles: [master]}\n    - {name: m3, address: 10.0.0.23, roles: [master]}\n", "spec:", "spec: #<-"), "spec.controlPlaneEndpoint.address", Error, "no slb hosts, with 3 masters"},

	// kubernetes
	{"kubernetes version", haPlus("  kubernetes:\n    version: 1.37.2 #<-\n"), "spec.kubernetes.version", Error, "not of the form vX.Y.Z"},
	{"kubernetes version float", haPlus("  kubernetes:\n    version: 1.37 #<-\n"), "spec.kubernetes.version", Error, `"1.37" is not of the form`},
	{"bad pod CIDR", haPlus("  kubernetes:\n    podCIDR: 10.244.0.0/33 #<-\n"), "spec.kubernetes.podCIDR", Error, "is not a CIDR"},
	{"pod CIDR host bits", haPlus("  kubernetes:\n    podCIDR: 10.244.0.1/16 #<-\n"), "spec.kubernetes.podCIDR", Error, "10.244.0.1/16 has host bits set"},
	{"bad service CIDR", haPlus("  kubernetes:\n    serviceCIDR: services #<-\n"), "spec.kubernetes.serviceCIDR", Error, "is not a CIDR"},
	{"CIDRs overlap", haPlus("  kubernetes:\n    podCIDR: 10.96.0.0/16\n    serviceCIDR: 10.96.0.0/12 #<-\n"), "spec.kubernetes.serviceCIDR", Error, "overlaps pod CIDR"},
	{"service CIDR too large", haPlus("  kubernetes:\n    serviceCIDR: 10.96.0.0/11 #<-\n"), "spec.kubernetes.serviceCIDR", Error, "too large"},
	{"service CIDR v6 too large", haPlus("  kubernetes:\n    podCIDR: fd00:1::/48\n    serviceCIDR: fd00:2::/100 #<-\n"), "spec.kubernetes.serviceCIDR", Error, "too large"},
	{"pod CIDR smaller than a node", haPlus("  kubernetes:\n    podCIDR: 10.244.0.0/25 #<-\n"), "spec.kubernetes.podCIDR", Error, "smaller than one node's range"},
	{"pod CIDR too few nodes", haPlus("  kubernetes:\n    podCIDR: 10.244.0.0/23 #<-\n"), "spec.kubernetes.podCIDR", Error, "room for 2 nodes, the inventory has 4"},
	{"mixed families", haPlus("  kubernetes:\n    serviceCIDR: fd00::/112 #<-\n"), "spec.kubernetes.serviceCIDR", Error, "different IP families"},
	{"host inside pod CIDR", ha(w1, "    - {name: w1, address: 10.244.0.31, roles: [worker]} #<-\n"), "spec.hosts[5].internalAddress", Error, "inside the pod CIDR 10.244.0.0/16"},
	{"cluster domain", haPlus("  kubernetes:\n    clusterDomain: cluster..local #<-\n"), "spec.kubernetes.clusterDomain", Error, "not a DNS name"},

	// network
	{"network plugin", haPlus("  network:\n    plugin: calico #<-\n"), "spec.network.plugin", Error, `unknown network plugin "calico"`},
	{"network manifest missing", haPlus("  network: #<-\n    plugin: manifest\n"), "spec.network.manifest", Error, "needs a manifest"},
	{"network manifest ignored", haPlus("  network:\n    manifest: cni.yaml #<-\n"), "spec.network.manifest", Warning, "ignored"},

	// certificates
	{"validity zero", haPlus("  certificates:\n    validity: 0s #<-\n"), "spec.certificates.validity", Error, "not positive"},
	{"labels on a non-node", ha(s1, "    - {name: slb1, address: 10.0.0.11, roles: [slb], labels: {a: b}} #<-\n"), "spec.hosts[0].labels", Warning, "labels are ignored"},
	{"validity negative", haPlus("  certificates:\n    validity: -1h #<-\n"), "spec.certificates.validity", Error, "not positive"},
	{"CA validity negative", haPlus("  certificates:\n    caValidity: -1d #<-\n"), "spec.certificates.caValidity", Error, "not positive"},
	{"leaf outlives CA", haPlus("  certificates:\n    validity: 3650d #<-\n    caValidity: 365d\n"), "spec.certificates.validity", Error, "longer than the CA validity"},
	{"leaf outlives default CA", haPlus("  certificates:\n    validity: 87601h #<-\n"), "spec.certificates.validity", Error, "longer than the CA validity 87600h"},

	// preflight
	{"ignore all", haPlus("  preflight:\n    ignoreErrors: [SystemVerification, all] #<-\n"), "spec.preflight.ignoreErrors[1]", Error, "refused"},
	{"ignore ALL", haPlus("  preflight:\n    ignoreErrors:\n      - ALL #<-\n"), "spec.preflight.ignoreErrors[0]", Error, "refused"},
	{"ignore all in a list", haPlus("  preflight:\n    ignoreErrors:\n      - Swap,All #<-\n"), "spec.preflight.ignoreErrors[0]", Error, "refused"},
	{"ignore several in one", haPlus("  preflight:\n    ignoreErrors:\n      - Swap,SystemVerification #<-\n"), "spec.preflight.ignoreErrors[0]", Error, "several checks"},
	{"ignore empty", haPlus("  preflight:\n    ignoreErrors:\n      - '' #<-\n"), "spec.preflight.ignoreErrors[0]", Error, "empty preflight check"},

	// decoding
	{"unknown field", ha(w1, "    - name: w1\n      adress: 10.0.0.31 #<-\n      roles: [worker]\n"), "spec.hosts[5].adress", Error, `unknown field "adress"`},
	{"unknown top field", haPlus("  kubernets: {} #<-\n"), "spec.kubernets", Error, `unknown field "kubernets"`},
	{"duplicate key", ha("    address: 10.0.0.100\n", "    address: 10.0.0.100\n    address: 10.0.0.101 #<-\n"), "spec.controlPlaneEndpoint.address", Error, "duplicate key \"address\", first written on line 14"},
	{"duplicate label", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], labels: {a: b, a: c}} #<-\n"), `spec.hosts[5].labels["a"]`, Error, "duplicate key"},
	{"port not a number", ha(w1, "    - {name: w1, address: 10.0.0.31, port: ssh, roles: [worker]} #<-\n"), "spec.hosts[5].port", Error, "expected a whole number"},
	{"bool not a bool", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {agent: yes}} #<-\n"), "spec.hosts[5].ssh.agent", Error, "expected true or false"},
	{"roles not a list", ha(w1, "    - {name: w1, address: 10.0.0.31, roles: worker} #<-\n"), "spec.hosts[5].roles", Error, "expected a list"},
	{"hosts not a list", light("  hosts:\n", "  hosts: {} #<-\n", m1, "", w1, ""), "spec.hosts", Error, "expected a list"},
	{"string not a mapping", haPlus("  kubernetes:\n    version: {major: 1} #<-\n"), "spec.kubernetes.version", Error, "expected a string"},
	{"bad duration", haPlus("  certificates:\n    validity: 1y #<-\n"), "spec.certificates.validity", Error, "invalid duration"},
	{"duration without unit", haPlus("  certificates:\n    validity: 100 #<-\n"), "spec.certificates.validity", Error, "invalid duration"},
	{"merge key", ha(w1, "    - <<: {name: w1} #<-\n      address: 10.0.0.31\n      roles: [worker]\n"), "spec.hosts[5].<<", Error, "unknown field"},
}

func TestRules(t *testing.T) {
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc(t)
			line := markedLine(t, doc)
			c, ps, err := Parse([]byte(doc), "hosts.yaml")
			found := false
			for _, p := range ps {
				if p.Path == tc.path && p.Severity == tc.sev && strings.Contains(p.Message, tc.msg) {
					found = true
					if p.Line != line {
						t.Errorf("%s: line %d, want %d\n%s", p.Path, p.Line, line, doc)
					}
				}
			}
			if !found {
				t.Fatalf("no %s at %s containing %q; got:\n%s\ndocument:\n%s", tc.sev, tc.path, tc.msg, problemList(ps), doc)
			}
			if tc.sev == Error {
				var ve *ValidationError
				if !errors.As(err, &ve) || c != nil {
					t.Fatalf("want a *ValidationError and no cluster, got %v, %v", err, c)
				}
				if !strings.Contains(err.Error(), tc.path) {
					t.Errorf("error text lacks %s:\n%v", tc.path, err)
				}
			}
			if tc.sev == Warning {
				if err != nil || c == nil {
					t.Fatalf("a warning alone must not fail loading: %v", err)
				}
				if errs, _ := Count(ps); errs > 0 {
					t.Fatalf("unexpected errors:\n%s", problemList(ps))
				}
			}
		})
	}
}

func problemList(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + string(p.Severity) + ": " + p.String() + "\n")
	}
	return b.String()
}

// Cases that look wrong but are fine.
func TestRulesAccept(t *testing.T) {
	for name, doc := range map[string]string{
		"ha":                         haBase,
		"lightweight":                lightBase,
		"wider VIP net":              edit(t, haBase, "address: 10.0.0.100", "address: 10.0.1.100") + "  loadBalancer: {vipPrefix: 16}\n",
		"VRRPv3 adverts every 200ms": haBase + "  loadBalancer: {vrrpVersion: 3, advertInterval: 200ms}\n",
		"external etcd":              edit(t, haBase, w1, w1+"    - {name: e1, address: 10.0.0.41, roles: [etcd]}\n    - {name: e2, address: 10.0.0.42, roles: [etcd]}\n    - {name: e3, address: 10.0.0.43, roles: [etcd]}\n"),
		"etcd on masters, external": edit(t, edit(t, edit(t, haBase, m1, "    - {name: m1, address: 10.0.0.21, roles: [master, etcd]}\n"),
			m2, "    - {name: m2, address: 10.0.0.22, roles: [master, etcd]}\n"), m3, "    - {name: m3, address: 10.0.0.23, roles: [master, etcd]}\n"),
		"bastion chain": edit(t, haBase, w1, "    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: {bastion: inner}}\n") +
			"  bastions:\n    - {name: inner, address: 10.1.0.2, ssh: {bastion: outer}}\n    - {name: outer, address: jump.example.com}\n",
		"external LB, lightweight": edit(t, lightBase, m1, m1+"    - {name: m2, address: 10.0.0.22, roles: [master]}\n    - {name: m3, address: 10.0.0.23, roles: [master]}\n") +
			"  controlPlaneEndpoint: {address: lb.example.com}\n",
		"secrets":          edit(t, haBase, w1, "    - {name: w1, address: w1.example.com, internalAddress: 10.0.0.31, user: ops, roles: [worker], ssh: {password: {env: PW}}, sudo: {enabled: true, password: {file: /pw}}}\n"),
		"ipv6":             "apiVersion: k4t.io/v1alpha1\nkind: Cluster\nspec:\n  hosts:\n    - {name: m1, address: 'fd00::21', roles: [master, worker]}\n  kubernetes: {podCIDR: 'fd00:1::/56', serviceCIDR: 'fd00:2::/112'}\n",
		"aliases":          "apiVersion: k4t.io/v1alpha1\nkind: Cluster\nspec:\n  hosts:\n    - {name: m1, address: 10.0.0.21, roles: &r [master, worker], ssh: &s {keyFile: /k}}\n    - {name: w1, address: 10.0.0.31, roles: [worker], ssh: *s}\n",
		"null spec fields": "apiVersion: k4t.io/v1alpha1\nkind: Cluster\nmetadata:\nspec:\n  hosts:\n    - {name: m1, address: 10.0.0.21, roles: [master]}\n  bastions: ~\n  etcd:\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, ps, err := Parse([]byte(doc), name)
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			if _, w := Count(ps); w > 0 && name != "external LB, lightweight" {
				t.Errorf("unexpected warnings:\n%s", problemList(ps))
			}
		})
	}
}

func TestKubeletSettings(t *testing.T) {
	base := string(SampleInventory)
	for _, tc := range []struct{ add, want string }{
		{"    kubelet:\n      cgroupDriver: sytemd\n", "spec.kubernetes.kubelet.cgroupDriver"},
		{"    kubelet:\n      imageGCHighThresholdPercent: 80\n      imageGCLowThresholdPercent: 90\n", "spec.kubernetes.kubelet.imageGCHighThresholdPercent"},
	} {
		in := strings.Replace(base, "  kubernetes:\n", "  kubernetes:\n"+tc.add, 1)
		if in == base {
			t.Fatal("sample has no spec.kubernetes block to extend")
		}
		_, _, err := Parse([]byte(in), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error at %s, got %v", tc.want, err)
		}
	}
}
