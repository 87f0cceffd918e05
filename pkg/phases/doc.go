// Package phases holds k4t's phases, one file each (preflight, pki, os, slb,
// etcd, runtime, kubelet, control-plane, workers, network, labels,
// kubeconfig), the health gates they and the day-2 commands wait on
// (gates.go), and the certificate lifecycle (certs_*.go). pkg/action lists
// which phases each command runs; pkg/engine plans and applies them.
package phases
