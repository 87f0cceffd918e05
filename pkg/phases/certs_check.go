package phases

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"k4t.io/k4t/pkg/apis/v1alpha1"
	"k4t.io/k4t/pkg/certs"
	"k4t.io/k4t/pkg/engine"
	"k4t.io/k4t/pkg/templates"
	"k4t.io/k4t/pkg/transport"
)

// certsPhase names the certificate commands in errors and events.
const certsPhase = "certs"

// Where kubeadm and kubelet keep what k4t checks and renews on a node.
const (
	kubePKI           = "/etc/kubernetes/pki"
	manifestsDir      = "/etc/kubernetes/manifests"
	kubeletPKI        = "/var/lib/kubelet/pki"
	kubeletServing    = kubeletPKI + "/kubelet.crt"
	kubeletClientPEM  = kubeletPKI + "/kubelet-client-current.pem"
	kubeletConf       = "/etc/kubernetes/kubelet.conf"
	superAdminConf    = "/etc/kubernetes/super-admin.conf"
	controllerMgrConf = "/etc/kubernetes/controller-manager.conf"
	schedulerConf     = "/etc/kubernetes/scheduler.conf"
)

// BastionHost is the Host of rows about the state dir on the machine k4t runs on.
const BastionHost = "bastion"

// ExpectedCertFiles lists, for one host, every file holding a certificate that k4t expects
// there: the CAs, kubeadm's leaves and kubeconfigs on masters, k4t's etcd certificates on
// etcd members, kubelet's serving and client certificates and kubelet.conf on every node.
// slb hosts hold none. super-admin.conf only exists on the master that ran kubeadm init.
func ExpectedCertFiles(c *v1alpha1.Cluster, h *v1alpha1.Host) []string {
	var out []string
	isNode := h.HasRole(v1alpha1.RoleMaster) || h.HasRole(v1alpha1.RoleWorker)
	if h.HasRole(v1alpha1.RoleMaster) {
		for _, n := range []string{"ca", "front-proxy-ca", "apiserver", "apiserver-kubelet-client", "front-proxy-client", "apiserver-etcd-client"} {
			out = append(out, kubePKI+"/"+n+".crt")
		}
		out = append(out, templates.KubeadmEtcdCAFile, adminConf, controllerMgrConf, schedulerConf)
		if fm := c.FirstMaster(); fm != nil && fm.Name == h.Name {
			out = append(out, superAdminConf)
		}
	} else if isNode {
		out = append(out, kubePKI+"/ca.crt")
	}
	if isNode {
		out = append(out, kubeletConf, kubeletServing, kubeletClientPEM)
	}
	if slices.ContainsFunc(c.EtcdMembers(), func(m *v1alpha1.Host) bool { return m.Name == h.Name }) {
		out = append(out, templates.EtcdCAFile, templates.EtcdServerCert, templates.EtcdPeerCert, etcdHealthCert)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// readCertsScript prints every named file after a "==> path" line: certificate files
// reduced to their CERTIFICATE blocks and kubeconfigs without their client-key-data, so
// no private key leaves the host. A file that is absent gets "!! missing", one that
// cannot be read "!! unreadable".
const readCertsScript = `for f in "$@"; do echo "==> $f"; if [ ! -e "$f" ]; then echo '!! missing'; elif [ ! -r "$f" ]; then echo '!! unreadable'
elif [ "${f%.conf}" != "$f" ]; then grep -v 'client-key-data' "$f" || true; else sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$f"; fi; done`

// ReadHostCerts reads files on h in one command (see readCertsScript). Missing and
// unreadable files come back in problems, keyed by path.
func ReadHostCerts(ctx context.Context, h transport.Host, files []string) (contents map[string][]byte, problems map[string]string, err error) {
	if len(files) == 0 {
		return map[string][]byte{}, map[string]string{}, nil
	}
	args := make([]string, len(files))
	for i, f := range files {
		args[i] = transport.ShellQuote(f)
	}
	res, err := h.Run(ctx, transport.Cmd{Command: "sh -s -- " + strings.Join(args, " "), Stdin: []byte(readCertsScript), Timeout: time.Minute, ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	return parseHostCerts(string(res.Stdout), files)
}

func parseHostCerts(out string, files []string) (map[string][]byte, map[string]string, error) {
	contents, problems := map[string][]byte{}, map[string]string{}
	var cur string
	var buf strings.Builder
	flush := func() {
		if cur == "" {
			return
		}
		body := buf.String()
		switch strings.TrimSpace(body) {
		case "!! missing":
			problems[cur] = "missing"
		case "!! unreadable":
			problems[cur] = "unreadable: permission denied"
		default:
			contents[cur] = []byte(body)
		}
		buf.Reset()
	}
	for _, line := range strings.SplitAfter(out, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "==> "); ok && slices.Contains(files, p) {
			flush()
			cur = p
			continue
		}
		if cur != "" {
			buf.WriteString(line)
		}
	}
	flush()
	for _, f := range files {
		if _, ok := contents[f]; !ok && problems[f] == "" {
			problems[f] = "not read (the host's answer ended early)"
		}
	}
	return contents, problems, nil
}

// CheckHostCerts reports every expected certificate of one host: a row per certificate
// found (certs.CheckFiles) and a row with Err for each expected file that is missing or
// unreadable.
func CheckHostCerts(ctx context.Context, r *engine.Run, h *v1alpha1.Host) ([]certs.Expiry, error) {
	files := ExpectedCertFiles(r.Cluster, h)
	if len(files) == 0 {
		return nil, nil
	}
	conn, err := r.Connect(ctx, h)
	if err != nil {
		return nil, err
	}
	contents, problems, err := ReadHostCerts(ctx, conn, files)
	if err != nil {
		return nil, err
	}
	rows := certs.CheckFiles(h.Name, contents, r.Now())
	for _, f := range files {
		if p := problems[f]; p != "" {
			rows = append(rows, certs.Expiry{Host: h.Name, Name: f, Err: p})
		}
	}
	// A kubeconfig without an embedded client certificate (kubelet.conf points at a
	// file) is fine; one whose content yields no row at all is not.
	have := map[string]bool{}
	for _, row := range rows {
		have[strings.SplitN(row.Name, "#", 2)[0]] = true
		have[strings.SplitN(row.Name, "[", 2)[0]] = true
	}
	for _, f := range files {
		if _, ok := contents[f]; ok && !have[f] {
			rows = append(rows, certs.Expiry{Host: h.Name, Name: f, Err: "holds no certificate"})
		}
	}
	slices.SortStableFunc(rows, func(a, b certs.Expiry) int { return strings.Compare(a.Name, b.Name) })
	return rows, nil
}

// CheckBastionCerts reports the state dir's pki/ and its admin kubeconfig, as host "bastion".
func CheckBastionCerts(r *engine.Run) []certs.Expiry {
	rows, err := certs.CheckDir(r.State.PKI(), r.Now())
	if err != nil {
		rows = []certs.Expiry{{Name: r.State.PKI(), Err: err.Error()}}
	}
	for i := range rows {
		rows[i].Name = "pki/" + rows[i].Name
	}
	kc := r.State.Kubeconfig()
	b, err := os.ReadFile(kc)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rows = append(rows, certs.Expiry{Name: "admin.conf", Err: "missing — run `k4t apply --only kubeconfig` (or `k4t certs renew`)"})
	case err != nil:
		rows = append(rows, certs.Expiry{Name: "admin.conf", Err: "unreadable: " + err.Error()})
	default:
		rows = append(rows, certs.CheckFiles("", map[string][]byte{"admin.conf": b}, r.Now())...)
	}
	for i := range rows {
		rows[i].Host = BastionHost
	}
	return rows
}

// CheckAllCerts reports every certificate on every host (in parallel) and on the bastion,
// ordered by the inventory's host order, then by file. A host that cannot be reached or
// read gets one row with Err; nothing is skipped.
func CheckAllCerts(ctx context.Context, r *engine.Run) []certs.Expiry {
	type hostRows struct {
		h    *v1alpha1.Host
		rows []certs.Expiry
	}
	var per []*hostRows
	for _, h := range engine.AllHosts(r) {
		per = append(per, &hostRows{h: h})
	}
	_ = engine.ForEachHost(ctx, r, per, func(ctx context.Context, hr *hostRows) error {
		rows, err := CheckHostCerts(ctx, r, hr.h)
		if err != nil {
			rows = []certs.Expiry{{Host: hr.h.Name, Name: "(host)", Err: fmt.Sprintf("cannot read certificates: %v — check that k4t can reach %s over SSH", trimHostPrefix(err, hr.h.Name), hr.h.Name)}}
		}
		hr.rows = rows
		return nil // a host's failure is its row
	})
	var out []certs.Expiry
	for _, hr := range per {
		out = append(out, hr.rows...)
	}
	return append(out, CheckBastionCerts(r)...)
}

func trimHostPrefix(err error, host string) string {
	return strings.TrimPrefix(err.Error(), host+": ")
}

// ExpiryProblem says what is wrong with a row for an exit status: an error, or expired.
func ExpiryProblem(row certs.Expiry) string {
	switch {
	case row.Err != "":
		return row.Err
	case row.Left <= 0:
		return "expired " + row.NotAfter.UTC().Format(time.RFC3339)
	}
	return ""
}
