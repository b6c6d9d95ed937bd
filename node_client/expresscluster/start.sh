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
# resource's timeout must be longer than the client's `timeout` (default 300 s).

IPMOVER="${IPMOVER:-/usr/local/sbin/ipmover}"
LOG_TAG="${IPMOVER_LOG_TAG:-ipmover}"

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
if [ "$rc" -ne 0 ]; then
	log "start.sh: acquire failed with exit code $rc"
	if command -v clplogcmd >/dev/null 2>&1; then
		clplogcmd -m "ipmover acquire failed (exit code $rc); see syslog tag $LOG_TAG" -l ERR
	fi
fi
exit "$rc"
