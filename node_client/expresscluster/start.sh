#!/bin/sh
# EXPRESSCLUSTER EXEC resource, start script: move the cluster's secondary IP to this server.
#
# Replaces the vendor sample's `az` calls with the ipmover client (docs/node-client.md). All
# settings (function URL, audience, IP, timeout) are in /etc/ipmover.conf, so this script is
# the same on every server. EXPRESSCLUSTER's CLP_EVENT, CLP_SERVER, CLP_GROUPNAME and
# CLP_RESOURCENAME stay in the environment: the client sends them along with the request,
# for the audit trail.
#
# Exit code: 0 when the IP is on this server; otherwise the client's non-zero exit code
# (see `ipmover --help`), and EXPRESSCLUSTER treats the activation as failed. The EXEC
# resource's start timeout is the client's `timeout` (default 300 s) plus 30 s, so that the
# client gives up first and says why (docs/node-client.md, "EXPRESSCLUSTER settings").
#
# Break glass (docs/operations.md): while the file IPMOVER_BREAK_GLASS_FILE exists (an operator
# creates it during an outage of the mover, after putting the IP on this server's NIC by hand),
# a failed acquire still succeeds when this VM's instance metadata shows the IP here. Azure lets
# one ip-configuration in the VNet hold a private IP, so the IP is then here and nowhere else.

IPMOVER="${IPMOVER:-/usr/local/sbin/ipmover}"
LOG_TAG="${IPMOVER_LOG_TAG:-ipmover}"
BREAK_GLASS_FILE="${IPMOVER_BREAK_GLASS_FILE:-/etc/ipmover.break-glass}"
# The instance-metadata check of the break-glass path: as long as the monitor gives it.
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
	log "start.sh: the ipmover client is not installed at $IPMOVER"
	exit 1
fi
log "start.sh: acquire (event ${CLP_EVENT:-none}, server ${CLP_SERVER:-$(uname -n)}, group ${CLP_GROUPNAME:-none}, resource ${CLP_RESOURCENAME:-none})"
exec 4>&1
rc=$(run_client acquire)
if [ "$rc" -ne 0 ] && [ -e "$BREAK_GLASS_FILE" ] &&
	"$IPMOVER" status --quiet --timeout "$STATUS_TIMEOUT" >/dev/null 2>&1; then
	log "start.sh: BREAK GLASS ($BREAK_GLASS_FILE exists): acquire failed with exit code $rc, but instance metadata shows the IP on this server; starting without the mover"
	if command -v clplogcmd >/dev/null 2>&1; then
		clplogcmd -m "ipmover: break glass, started without the mover (acquire exit code $rc)" -l WARN
	fi
	exit 0
fi
if [ "$rc" -ne 0 ]; then
	log "start.sh: acquire failed with exit code $rc"
	if command -v clplogcmd >/dev/null 2>&1; then
		clplogcmd -m "ipmover acquire failed (exit code $rc); see syslog tag $LOG_TAG" -l ERR
	fi
fi
exit "$rc"
