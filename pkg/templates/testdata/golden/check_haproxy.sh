#!/bin/bash
# Managed by k4t: keepalived runs this; a non-zero exit takes the VIP away
# from this host.
# pgrep, not pidof: pidof (killall5) fails inside some containers.
pgrep -x haproxy >/dev/null || exit 1
exit 0
