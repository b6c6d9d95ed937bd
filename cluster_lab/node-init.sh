#!/bin/bash
# node-init.sh NAME NODEDIR INSTALLDIR: PID 1 of one cluster node.
#
# Started by cluster_lab.pacemaker inside the node's network namespace as
#   ip netns exec NETNS unshare --mount --uts --pid --fork --kill-child --mount-proc \
#       --propagation private bash node-init.sh NAME NODEDIR INSTALLDIR
# so the node has its own hostname, processes and mounts. It gets fresh tmpfs /run, /dev/shm
# and /tmp (like a reboot: Pacemaker and the agents keep state there), its own /var/log and
# /var/lib/{pacemaker,corosync}, and read-only overlays that install what a real node has
# installed: the node client as /usr/local/sbin/ipmover, its /etc/ipmover.conf, the OCF
# agents, the trusted CA. Then it runs corosync and pacemakerd in the foreground, no systemd.
set -eu
name=$1 d=$2 install=$3

hostname "$name"
mount -t tmpfs -o mode=1777,size=256m tmpfs /dev/shm   # libqb ring buffers
for sub in log lib-pacemaker lib-corosync; do mkdir -p "$d/$sub"; done
mount -t tmpfs -o mode=755 tmpfs /run                  # fresh at every start: no stale agent state
mount --bind "$d/log" /var/log
mount --bind "$d/lib-pacemaker" /var/lib/pacemaker
mount --bind "$d/lib-corosync" /var/lib/corosync
# What the administrator installed on the VM, layered over the host's files for this node only.
mount -t overlay overlay -o "lowerdir=$install/etc:/etc" /etc
mount -t overlay overlay -o "lowerdir=$install/sbin:/usr/local/sbin" /usr/local/sbin
mount -t overlay overlay -o "lowerdir=$install/ocf:/usr/lib/ocf/resource.d" /usr/lib/ocf/resource.d
mount --bind "$d/etc-corosync" /etc/corosync
mount -t tmpfs -o mode=1777 tmpfs /tmp                 # last: NODEDIR may live under /tmp

mkdir -p /run/resource-agents /run/lock /run/crm /var/log/pacemaker/bundles /var/log/corosync /var/log/cluster
for s in cib pengine blackbox cores; do mkdir -p /var/lib/pacemaker/$s; done
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker /run/crm
chmod 750 /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
touch /var/log/pacemaker/pacemaker.log
chown hacluster:haclient /var/log/pacemaker/pacemaker.log

# A VM's environment, not the test runner's (its PATH could find another python3 first).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none
unset PYTHONPATH VIRTUAL_ENV

corosync -f >/var/log/corosync/stdout.log 2>&1 &
cpid=$!
for _ in $(seq 200); do
	corosync-cfgtool -s >/dev/null 2>&1 && break
	kill -0 $cpid 2>/dev/null || { echo "corosync died:"; cat /var/log/corosync/stdout.log; exit 1; }
	sleep 0.05
done
pacemakerd >/var/log/pacemaker/stdout.log 2>&1 &
pmpid=$!
echo "node $name up: corosync=$cpid pacemakerd=$pmpid"

# A graceful stop on SIGTERM (PID 1 ignores signals it has no handler for).
stop() {
	kill -TERM "$pmpid" 2>/dev/null || true
	for _ in $(seq 600); do kill -0 "$pmpid" 2>/dev/null || break; sleep 0.1; done
	kill -TERM "$cpid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
	exit 0
}
trap stop TERM INT
# Stay alive as the namespace's reaper; `wait` returns early on trapped signals.
while :; do wait || true; sleep 1; done
