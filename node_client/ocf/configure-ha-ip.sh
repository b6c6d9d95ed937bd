#!/bin/sh
# The Pacemaker recipe for the secondary IP (docs/node-client.md, "Pacemaker"). Run it once,
# on one node, after the client, /etc/ipmover.conf and the agent are installed on every node:
#   sh configure-ha-ip.sh
# It needs only pacemaker-cli-utils (cibadmin, crm_attribute), so it works beside pcs and crm.
# Then add your service's resource as the last member of group ha-ip. The cluster tests
# (tests/cluster/) run this very file.
set -eu
IP=10.5.0.110
CIDR=24

# Microsoft's RHEL guides for Pacemaker on Azure: a resource stays where it runs (no
# failback after a recovered node rejoins), and moves after 3 failures on one node.
crm_attribute --type rsc_defaults --name resource-stickiness --update 1
crm_attribute --type rsc_defaults --name migration-threshold --update 3

# The Azure address first, then the OS address: traffic reaches a VM only once Azure has put
# the ip-configuration on its NIC. Start/stop 330 s: the client's own timeout (300 s) plus
# the 10 % the agent keeps back (it passes --timeout 297). Monitor: one IMDS read, every
# 10 s; 20 s lets the client (18 s) retry a failing IMDS 4 times, a hung one twice.
cibadmin --create --scope resources --xml-text "$(cat <<XML
<group id="ha-ip">
  <primitive id="vip-azure" class="ocf" provider="ipmover" type="azure-secondary-ip">
    <instance_attributes id="vip-azure-params">
      <nvpair id="vip-azure-ip" name="ip" value="$IP"/>
    </instance_attributes>
    <operations>
      <op id="vip-azure-start" name="start" interval="0s" timeout="330s"/>
      <op id="vip-azure-stop" name="stop" interval="0s" timeout="330s"/>
      <op id="vip-azure-monitor" name="monitor" interval="10s" timeout="20s"/>
    </operations>
  </primitive>
  <primitive id="vip-os" class="ocf" provider="heartbeat" type="IPaddr2">
    <instance_attributes id="vip-os-params">
      <nvpair id="vip-os-ip" name="ip" value="$IP"/>
      <nvpair id="vip-os-cidr" name="cidr_netmask" value="$CIDR"/>
    </instance_attributes>
    <operations>
      <op id="vip-os-start" name="start" interval="0s" timeout="20s"/>
      <op id="vip-os-stop" name="stop" interval="0s" timeout="20s"/>
      <op id="vip-os-monitor" name="monitor" interval="10s" timeout="20s"/>
    </operations>
  </primitive>
</group>
XML
)"
