#!/bin/sh
# EXPRESSCLUSTER EXEC resource, stop script: take the cluster's secondary IP off this server.
#
# The counterpart of start.sh (docs/node-client.md). Release only ever touches this server's
# NIC and succeeds when the IP is not here. CLP_* variables go into the request's context.
#
# Exit code: 0 when the IP is off this server; otherwise the client's non-zero exit code.
# The EXEC resource's stop timeout is the client's `timeout` plus 30 s, as for start.sh.
#
# Break glass (docs/operations.md): while IPMOVER_BREAK_GLASS_FILE exists, a failed release
# still succeeds when this VM's instance metadata shows for certain that the IP is not here
# (the operator took it off by hand).

IPMOVER="${IPMOVER:-/usr/local/sbin/ipmover}"
LOG_TAG="${IPMOVER_LOG_TAG:-ipmover}"
BREAK_GLASS_FILE="${IPMOVER_BREAK_GLASS_FILE:-/etc/ipmover.break-glass}"
STATUS_TIMEOUT="${IPMOVER_MONITOR_TIMEOUT:-20}"

log() {
	# One line to stdout (kept when the resource's log output path is set) and to syslog.
	echo "$1"
	if command -v logger >/dev/null 2>&1; then
		logger -t "$LOG_TAG" -- "$1" 2>/dev/null
	fi
}

run_client() {
	# Log each line of the client's output as it comes and print the client's exit code.
	# POSIX sh has no PIPESTATUS (and /bin/sh may be dash): the code leaves on descriptor 3
	# while the log lines go to descriptor 4, the script's own stdout.
	{ { "$IPMOVER" "$@" 2>&1; echo "$?" >&3; } | while IFS= read -r line; do log "$line" >&4; done; } 3>&1
}

if [ ! -x "$IPMOVER" ]; then
	log "stop.sh: the ipmover client is not installed at $IPMOVER"
	exit 1
fi
log "stop.sh: release (event ${CLP_EVENT:-none}, server ${CLP_SERVER:-$(uname -n)}, group ${CLP_GROUPNAME:-none}, resource ${CLP_RESOURCENAME:-none})"
exec 4>&1
rc=$(run_client release)
if [ "$rc" -ne 0 ] && [ -e "$BREAK_GLASS_FILE" ]; then
	"$IPMOVER" status --quiet --timeout "$STATUS_TIMEOUT" >/dev/null 2>&1
	if [ "$?" -eq 7 ]; then
		log "stop.sh: BREAK GLASS ($BREAK_GLASS_FILE exists): release failed with exit code $rc, but instance metadata shows the IP is not on this server; stopping without the mover"
		if command -v clplogcmd >/dev/null 2>&1; then
			clplogcmd -m "ipmover: break glass, stopped without the mover (release exit code $rc)" -l WARN
		fi
		exit 0
	fi
fi
if [ "$rc" -ne 0 ]; then
	log "stop.sh: release failed with exit code $rc"
	if command -v clplogcmd >/dev/null 2>&1; then
		clplogcmd -m "ipmover release failed (exit code $rc); see syslog tag $LOG_TAG" -l ERR
	fi
fi
exit "$rc"
