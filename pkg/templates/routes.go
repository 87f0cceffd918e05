package templates

import (
	"cmp"
	"slices"
)

// Pod routes for the bridge CNI: each node routes the other nodes'
// podCIDRs to them. A oneshot unit applies the list at boot and on change,
// on any systemd host (no dependency on a particular network manager).
const (
	PodRoutesPath = "/etc/k4t/pod-routes"
	PodRoutesUnit = "/etc/systemd/system/k4t-pod-routes.service"
)

// PodRoutes renders PodRoutesPath from routes (destination CIDR, gateway
// IP), sorted by destination so the file is stable. Zero routes give a
// file with only the header (a single-node cluster needs none).
func PodRoutes(routes []Route) ([]byte, error) {
	p := problems{what: "pod-routes"}
	sorted := slices.Clone(routes)
	for i, r := range sorted {
		p.prefix("Routes["+itoa(i)+"].Destination", r.Destination)
		p.ip("Routes["+itoa(i)+"].Gateway", r.Gateway)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	slices.SortFunc(sorted, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Destination, b.Destination), cmp.Compare(a.Gateway, b.Gateway))
	})
	return render("pod-routes.tmpl", sorted)
}

// PodRoutesService renders PodRoutesUnit.
func PodRoutesService() ([]byte, error) {
	return render("pod-routes.service.tmpl", struct{ RoutesPath string }{PodRoutesPath})
}
