// Package certs creates, reads and renews the cluster's PKI in a local directory (the state
// dir's pki/). It knows nothing of SSH or phases: callers copy the files to hosts.
//
// Layout (relative to the directory; dirs 0700, keys 0600, certificates and sa.pub 0644):
//
//	ca.crt, ca.key                         Kubernetes CA, CN "kubernetes"
//	front-proxy-ca.crt, front-proxy-ca.key front-proxy CA, CN "front-proxy-ca"
//	sa.key, sa.pub                         service-account signing key pair
//	etcd/ca.crt, etcd/ca.key               etcd CA, CN "etcd-ca"
//	etcd/<member>/server.crt, server.key   etcd serving cert (server+client auth)
//	etcd/<member>/peer.crt, peer.key       etcd peer cert (server+client auth)
//	etcd/healthcheck-client.crt, .key      CN "kube-etcd-healthcheck-client" (client auth)
//	apiserver-etcd-client.crt, .key        CN "kube-apiserver-etcd-client" (client auth)
//
// The names and subjects follow kubeadm's, so kubeadm takes ca.* and front-proxy-ca.* as
// pre-provided CAs and signs its own leaves (apiserver, kubelet client, front-proxy client)
// with them, and takes sa.* as is. Since kubeadm v1.2x the etcd client certs carry no
// organisation (no "system:masters"); neither do ours.
//
// Key types, chosen deliberately:
//   - CAs and the service-account key: RSA 2048, PKCS#1 PEM ("RSA PRIVATE KEY"), sa.pub as
//     PKIX ("PUBLIC KEY"). That is kubeadm's default, so every kubeadm code path (init, join
//     --control-plane, certs renew, upgrade) and every consumer of sa.pub handles it.
//   - Leaves issued here (etcd server/peer/clients, IssueClient): ECDSA P-256, SEC1 PEM
//     ("EC PRIVATE KEY"). etcd, kube-apiserver and kubectl are Go programs that accept
//     it; generation takes microseconds instead of ~100 ms and handshakes are cheaper.
//
// Certificates are signed with cfssl v1.6.5 (csr.ParseRequest/csr.Generate and
// signer/local). Validity comes from the caller's clock: NotBefore = now - 5 min (for clock
// skew between the bastion and the nodes), NotAfter = now + validity. CAs are built the way
// initca.New builds them (initca.CAPolicy and a self-signing local signer) but with explicit
// NotBefore/NotAfter, because initca.New reads time.Now itself. CA renewal keeps the key and
// the encoded subject, so every leaf signed by the old CA certificate still verifies.
package certs
