# shellcheck shell=bash
# Recipes for the node runtime pieces and the images. Sourced by lib.sh.
#
# Pieces whose version does not follow Kubernetes (containerd, runc, CNI,
# crictl, CoreDNS, the kube-proxy base) are built once into their own
# <name>-<version>/ dir and registered in the Kubernetes set's manifest with
# a ../ path, so a second Kubernetes version reuses them.

# shared NAME VERSION: the dir of a piece that is shared across Kubernetes sets.
shared() { echo "$CACHE/$1-$2"; }

# go_bin MODULE@VERSION OUT PKG [go build flags...]: one go build in a
# throwaway module that requires MODULE@VERSION.
go_bin() {
	local modv=$1 outf=$2 pkg=$3 w
	shift 3
	w=$CACHE/work/$(basename "${modv%@*}")-${modv#*@}
	gomod "$w" "$modv"
	mkdir -p "$(dirname "$outf")"
	(cd "$w" && heavy go build -trimpath "$@" -o "$outf" "$pkg")
}

# ---------------------------------------------------------------- containerd
do_containerd() {
	local m=github.com/containerd/containerd/v2 c
	local ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Revision=$CONTAINERD_VERSION -X $m/version.Package=$m"
	for c in containerd ctr containerd-shim-runc-v2; do
		CGO_ENABLED=0 go_bin "$m@$CONTAINERD_VERSION" "$out/bin/$c" "$m/cmd/$c" \
			-tags no_btrfs,no_devmapper,no_zfs -ldflags "$ld"
	done
	"$out/bin/containerd" --version
}

build_containerd() {
	local d c
	d=$(shared containerd "$CONTAINERD_VERSION")
	piece "$d" containerd do_containerd
	for c in containerd ctr containerd-shim-runc-v2; do
		register "$K8S_DIR" "$c" "$CONTAINERD_VERSION" binary "../$(basename "$d")/bin/$c" "/usr/local/bin/$c" 0755
	done
}

# ---------------------------------------------------------------- runc
do_runc() {
	CGO_ENABLED=1 go_bin "github.com/opencontainers/runc@$RUNC_VERSION" "$out/bin/runc" github.com/opencontainers/runc \
		-tags "seccomp urfave_cli_no_docs netgo osusergo" \
		-ldflags "-s -w -X main.gitCommit=$RUNC_VERSION -extldflags -static"
	"$out/bin/runc" --version
	file "$out/bin/runc" | grep -q 'statically linked'
}

build_runc() {
	local d
	d=$(shared runc "$RUNC_VERSION")
	piece "$d" runc do_runc
	register "$K8S_DIR" runc "$RUNC_VERSION" binary "../$(basename "$d")/bin/runc" /usr/local/sbin/runc 0755
}

# ---------------------------------------------------------------- CNI plugins
CNI_PLUGINS=(main/bridge main/host-device main/ipvlan main/loopback main/macvlan main/ptp main/vlan main/dummy main/tap
	ipam/dhcp ipam/host-local ipam/static meta/bandwidth meta/firewall meta/portmap meta/sbr meta/tuning meta/vrf)

do_cni() {
	local m=github.com/containernetworking/plugins w p pkgs=()
	w=$CACHE/work/plugins-$CNI_VERSION
	gomod "$w" "$m@$CNI_VERSION"
	for p in "${CNI_PLUGINS[@]}"; do pkgs+=("$m/plugins/$p"); done
	mkdir -p "$out/bin"
	(cd "$w" && CGO_ENABLED=0 heavy go build -trimpath -o "$out/bin/" \
		-ldflags "-s -w -X $m/pkg/utils/buildversion.BuildVersion=$CNI_VERSION" "${pkgs[@]}")
	"$out/bin/bridge" --version 2>&1 | grep "$CNI_VERSION"
	tar --sort=name --owner=0 --group=0 --mtime=@0 -C "$out/bin" -czf "$out/cni-plugins-linux-amd64-$CNI_VERSION.tgz" .
}

build_cni() {
	local d
	d=$(shared cni-plugins "$CNI_VERSION")
	piece "$d" cni do_cni
	register "$K8S_DIR" cni-plugins "$CNI_VERSION" archive "../$(basename "$d")/cni-plugins-linux-amd64-$CNI_VERSION.tgz" /opt/cni/bin -
}

# ---------------------------------------------------------------- crictl
do_crictl() {
	CGO_ENABLED=0 go_bin "sigs.k8s.io/cri-tools@$CRICTL_VERSION" "$out/bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl \
		-ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
	"$out/bin/crictl" --version
}

build_crictl() {
	local d
	d=$(shared crictl "$CRICTL_VERSION")
	piece "$d" crictl do_crictl
	register "$K8S_DIR" crictl "$CRICTL_VERSION" binary "../$(basename "$d")/bin/crictl" /usr/local/bin/crictl 0755
}

# ---------------------------------------------------------------- CoreDNS
do_coredns() {
	CGO_ENABLED=0 go_bin "github.com/coredns/coredns@$COREDNS_VERSION" "$out/bin/coredns" github.com/coredns/coredns \
		-ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
	"$out/bin/coredns" -version
}

build_coredns() {
	piece "$(shared coredns "$COREDNS_VERSION")" coredns do_coredns
}

# ---------------------------------------------------------------- pause
do_pause() {
	local src
	src=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')/build/pause/linux/pause.c
	mkdir -p "$out/bin"
	gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-k4t" -o "$out/bin/pause" "$src"
	strip "$out/bin/pause"
	"$out/bin/pause" -v
}

build_pause() {
	piece "$(shared pause "$PAUSE_VERSION")" pause do_pause
}

# ---------------------------------------------------------------- images
# The kube-proxy image needs iptables/nftables inside: a minimal Debian root.
do_iptables_base() {
	local d opts=()
	for d in doc man locale info; do opts+=("--dpkgopt=path-exclude=/usr/share/$d/*"); done
	mmdebstrap --variant=essential --include=iptables,nftables,conntrack,ipset,kmod "${opts[@]}" \
		bookworm "$out/base.tar" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" </dev/null
}

build_iptables_base() {
	piece "$(shared iptables-base bookworm)" iptables-base do_iptables_base
}

# mkimage ARGS...: hack/build-artifacts/mkimage (go-containerregistry), built once.
mkimage() {
	local b=$CACHE/work/mkimage/mkimage
	if [[ ! -x $b || $here/mkimage/main.go -nt $b ]]; then
		mkdir -p "$(dirname "$b")"
		(cd "$here/mkimage" && go build -o "$b" .)
	fi
	"$b" "$@"
}

do_images() {
	local c ref etcd_tag coredns_dir pause_dir
	etcd_tag=${ETCD_VERSION#v}-0
	coredns_dir=$(shared coredns "$COREDNS_VERSION")
	pause_dir=$(shared pause "$PAUSE_VERSION")
	mkdir -p "$out/images"
	mkimage --out "$out/images/pause.tar" --tag "registry.k8s.io/pause:$PAUSE_VERSION" \
		--file "$pause_dir/bin/pause:/pause" --entrypoint /pause --user 65535:65535
	for c in kube-apiserver kube-controller-manager kube-scheduler; do
		mkimage --out "$out/images/$c.tar" --tag "registry.k8s.io/$c:$K8S_VERSION" \
			--file "$K8S_DIR/bin/$c:/usr/local/bin/$c" --entrypoint "/usr/local/bin/$c"
	done
	mkimage --out "$out/images/kube-proxy.tar" --tag "registry.k8s.io/kube-proxy:$K8S_VERSION" \
		--base "$(shared iptables-base bookworm)/base.tar" \
		--file "$K8S_DIR/bin/kube-proxy:/usr/local/bin/kube-proxy" --entrypoint /usr/local/bin/kube-proxy
	mkimage --out "$out/images/coredns.tar" --tag "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" \
		--file "$coredns_dir/bin/coredns:/coredns" --entrypoint /coredns
	mkimage --out "$out/images/etcd.tar" --tag "registry.k8s.io/etcd:$etcd_tag" \
		--file "$ETCD_DIR/bin/etcd:/usr/local/bin/etcd" --file "$ETCD_DIR/bin/etcdctl:/usr/local/bin/etcdctl" \
		--file "$ETCD_DIR/bin/etcdutl:/usr/local/bin/etcdutl" --entrypoint /usr/local/bin/etcd
	# What kubeadm will pull, for the record (etcd and CoreDNS tags are pinned
	# in the ClusterConfiguration to what was built here).
	"$K8S_DIR/bin/kubeadm" config images list --kubernetes-version "$K8S_VERSION" | tee "$out/images/kubeadm-images.txt"
}

build_images() {
	build_k8s
	build_etcd
	build_coredns
	build_pause
	build_iptables_base
	piece "$K8S_DIR" images do_images
	local c
	register "$K8S_DIR" pause-image "$PAUSE_VERSION" image images/pause.tar - - "registry.k8s.io/pause:$PAUSE_VERSION"
	for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
		register "$K8S_DIR" "$c-image" "$K8S_VERSION" image "images/$c.tar" - - "registry.k8s.io/$c:$K8S_VERSION"
	done
	register "$K8S_DIR" coredns-image "$COREDNS_VERSION" image images/coredns.tar - - "registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
	register "$K8S_DIR" etcd-image "$ETCD_VERSION" image images/etcd.tar - - "registry.k8s.io/etcd:${ETCD_VERSION#v}-0"
}
