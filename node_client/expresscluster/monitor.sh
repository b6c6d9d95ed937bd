#!/bin/sh
# EXPRESSCLUSTER custom monitor resource (genw): is the cluster's secondary IP on this server?
#
# Asks only this VM's instance metadata (no token, no call to the mover function), so it is
# cheap enough for a short interval. Register it to monitor while the failover group is
# active (docs/node-client.md).
#
# Exit code: 0 the IP is on this server; 7 it is not; other non-zero: could not tell (IMDS
# unreachable, configuration error). EXPRESSCLUSTER treats every non-zero code as an error,
# after the monitor resource's retry count.

IPMOVER="${IPMOVER:-/usr/local/sbin/ipmover}"
LOG_TAG="${IPMOVER_LOG_TAG:-ipmover}"
# The client's budget for one check. The monitor resource's timeout is this plus 10 s (30 s
# by default), so that the client reports "cannot tell" instead of being killed
# (docs/node-client.md, "EXPRESSCLUSTER settings"). A check normally takes well under a second;
# the budget covers IMDS retries (404/410/429/5xx) with backoff.
TIMEOUT="${IPMOVER_MONITOR_TIMEOUT:-20}"

log() {
	echo "$1"
	if command -v logger >/dev/null 2>&1; then
		logger -t "$LOG_TAG" -- "$1" 2>/dev/null
	fi
}

if [ ! -x "$IPMOVER" ]; then
	log "monitor.sh: the ipmover client is not installed at $IPMOVER"
	exit 1
fi
# --explain: when the IP is gone, one read of its history says who took it, and whether that
# looks like a split brain (both servers started the group); the check itself stays IMDS only.
output=$("$IPMOVER" status --quiet --explain --timeout "$TIMEOUT" 2>&1)
rc=$?
case "$rc" in
0) ;;
7)
	log "monitor.sh: the secondary IP is not on this server (instance metadata)"
	[ -n "$output" ] && log "monitor.sh: $output"
	;;
*) log "monitor.sh: cannot tell (exit code $rc): $output" ;;
esac
exit "$rc"
