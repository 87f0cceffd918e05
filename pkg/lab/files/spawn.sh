#!/bin/sh
# spawn.sh CGROUP_DIR... -- COMMAND...: move this shell into its own cgroup in
# every hierarchy (so each lab host has its own subtree), then become COMMAND.
set -eu
while [ "$1" != "--" ]; do echo $$ > "$1/cgroup.procs"; shift; done
shift
exec "$@"
