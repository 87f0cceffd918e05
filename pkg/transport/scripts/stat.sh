# k4t's stat: for each path given, one line: "absent", or
# "<octal mode> <user>:<group> <sha256>". A file's sum is kept under $cache,
# keyed by device, inode, size, mtime and ctime; any write gives the file a
# new ctime, so a kept sum is used only for the bytes it was computed from.
# A file changed in the last two seconds is summed and not kept (ctime has
# whole seconds here). The loop's list is expanded once, so set -- reuses $@.
cache=${K4T_SUM_CACHE:-/run/k4t/sums} # both set by tests only; reset removes /run/k4t
now=${K4T_STAT_NOW:-$(date +%s)}
mkdir -p "$cache" 2>/dev/null
for p in "$@"; do
	[ -e "$p" ] || { echo absent; continue; }
	set -- $(stat -Lc '%a %U:%G %d %i %s %Y %Z' "$p")
	[ $# -eq 7 ] || exit 1
	key="$3 $4 $5 $6 $7" f="$cache/$3.$4" sum=
	if [ -r "$f" ] && read -r k1 k2 k3 k4 k5 sum <"$f" && [ "$k1 $k2 $k3 $k4 $k5" != "$key" ]; then
		sum=
	fi
	if [ -z "$sum" ]; then
		sum=$(sha256sum <"$p") || exit 1
		sum=${sum%% *}
		if [ "$7" -lt $((now - 1)) ]; then echo "$key $sum" >"$f" 2>/dev/null; fi
	fi
	echo "$1 $2 $sum"
done
