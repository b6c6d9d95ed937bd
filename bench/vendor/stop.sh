#! /bin/sh
# The vendor article's stop.sh (seed/000_ad173376b1ff3e70.txt, "Stop Script (stop.sh)"),
# UNCHANGED except as start.sh beside it: annotations turned into comments, the lost
# HostName1 line restored, AZPath "az" (azure-cli's own virtual environment first on PATH).
HostName1="server01" # <-- Hostname of server1
HostName2="server02" # <-- Hostname of server2
NicName1="server01535" # <-- NIC name of server1
NicName2="server02800" # <-- NIC name of server2
AZPath="az" # <-- Path of az command
ResourceGroup="TestGroup1" # <-- Resource group name
IPConfig="ipconfig2" # <-- IP configuration to assign a secondary IP address
CurrentHostName=`hostname`
if [ "${CurrentHostName}" = "${HostName1}" ]
then
NicName="${NicName1}"
elif [ "${CurrentHostName}" = "${HostName2}" ]
then
NicName="${NicName2}"
else
exit 1
fi
"${AZPath}" login --identity
if [ "$?" != "0" ]
then
echo "Failed to az login"
exit 1
fi
"${AZPath}" network nic ip-config delete --name "${IPConfig}" --nic-name "${NicName}" --resource-group "${ResourceGroup}"
if [ "$?" != "0" ]
then
echo "Failed to delete secondary IP"
"${AZPath}" logout
exit 1
else
echo "Success to delete secondary IP"
"${AZPath}" logout
exit 0
fi
