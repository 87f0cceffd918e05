#!/bin/bash
# Managed by k4t: keepalived runs this; a non-zero exit takes the VIP away
# from this host.
# pgrep, not pidof: pidof (killall5) fails inside some containers.
pgrep -x haproxy >/dev/null || exit 1
# HAProxy must also accept connections on its local health frontend.
exec 3<>/dev/tcp/127.0.0.1/8404 || exit 1
exec 3>&-
exit 0
