# k4t's stat: for each path given, one line: "absent", or
# "<octal mode> <user>:<group> <sha256>". A file's sum is kept under $cache,
# keyed by device, inode, size, mtime and ctime; any write gives the file a
# new ctime, so a kept sum is used only for the bytes it was computed from.
# A file changed in the last two seconds is summed and not kept (ctime has
# whole seconds here). The file is opened once, so stat and sha256sum read
# the same inode even if a symlink on the path is repointed meanwhile. The
# loop's list is expanded once, so set -- may reuse $@. Sums of secret files
# stay readable by root only (umask). With --no-keep (k4t plan) kept sums
# are read, but nothing is written: a plan leaves no trace on the host.
umask 077
cache=${K4T_SUM_CACHE:-/run/k4t/sums} # both set by tests only; reset removes /run/k4t
now=${K4T_STAT_NOW:-$(date +%s)}
keep=1
if [ "${1-}" = --no-keep ]; then keep=0; shift; else mkdir -p "$cache" 2>/dev/null; fi
for p in "$@"; do
	[ -e "$p" ] || { echo absent; continue; }
	exec 3<"$p" || { echo "k4t stat: cannot read $p" >&2; exit 1; }
	out=$(stat -Lc '%a %U:%G %d %i %s %Y %Z' /dev/fd/3)
	set -- $out
	[ $# -eq 7 ] || { echo "k4t stat: $p: unexpected stat output: $out" >&2; exit 1; }
	key="$3 $4 $5 $6 $7" f="$cache/$3.$4" sum=
	if [ -r "$f" ] && read -r k1 k2 k3 k4 k5 s <"$f" && [ "$k1 $k2 $k3 $k4 $k5" = "$key" ] && [ ${#s} -eq 64 ]; then
		sum=$s
	fi
	if [ -z "$sum" ]; then
		sum=$(sha256sum <&3) || { echo "k4t stat: cannot hash $p" >&2; exit 1; }
		sum=${sum%% *}
		if [ $keep = 1 ] && [ "$7" -lt $((now - 1)) ]; then { echo "$key $sum" >"$f"; } 2>/dev/null; fi
	fi
	exec 3<&-
	echo "$1 $2 $sum"
done
