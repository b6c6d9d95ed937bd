#! /bin/sh
# The vendor article's start.sh (seed/000_ad173376b1ff3e70.txt, "Start Script"), UNCHANGED
# except: the "<-- ..." annotations the article prints after each setting are turned into
# comments (as printed they are not shell), the HostName1 line the article's copy lost is
# restored (start.sh compares against it), and AZPath is "az" instead of "/root/bin/az"
# (the benchmark puts azure-cli's own virtual environment first on PATH). The names are the
# seed topology's, which are the article's. Run by bench/azcli.py as the EXEC resource would.
HostName1="server01" # <-- Hostname of server1
HostName2="server02" # <-- Hostname of server2
NicName1="server01535" # <-- NIC name of server1
NicName2="server02800" # <-- NIC name of server2
AZPath="az" # <-- Path of az command
ResourceGroup="TestGroup1" # <-- Resource group name
VnetName="Vnet1" # <-- Virtual network name
SecondaryIP="10.5.0.110" # <-- Secondary IP address
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
#Check the usage status of secondary IP
CheckInUse=`"${AZPath}" network vnet check-ip-address -g "${ResourceGroup}" -n "${VnetName}" --ip-address "${SecondaryIP}" --output yaml | awk -F'[: ]' '$1=="available" {print $3}'`
if [ "${CheckInUse}" = "true" ]
then
echo "Address not in use"
elif [ "${CheckInUse}" = "false" ]
then
# Get nic-name
NicInUse=`"${AZPath}" network vnet check-ip-address -g "${ResourceGroup}" -n "${VnetName}" --ip-address "${SecondaryIP}" --output yaml | awk -F'[:]' '$1=="inUseWithResource" {print $2}' | awk -F'[/]' '{print $NF}'`
if [ "$?" != "0" ]
then
echo "Failed to get nic-name"
"${AZPath}" logout
exit 1
fi
if [ "${NicInUse}" = "${NicName}" ]
then
echo "Address already in use for ${CurrentHostName}"
"${AZPath}" logout
exit 0
else
# Delete secondary IP
"${AZPath}" network nic ip-config delete -g "${ResourceGroup}" -n "${IPConfig}" --nic-name "${NicInUse}"
if [ "$?" != "0" ]
then
echo "Failed to delete secondary IP"
"${AZPath}" logout
exit 1
fi
fi
else
echo "Failed to check secondary IP"
"${AZPath}" logout
exit 1
fi
# Create secondary IP
"${AZPath}" network nic ip-config create -g "${ResourceGroup}" -n "${IPConfig}" --nic-name "${NicName}" --private-ip-address "${SecondaryIP}"
if [ "$?" != "0" ]
then
echo "Failed to create secondary IP"
"${AZPath}" logout
exit 1
else
echo "Success to create secondary IP"
"${AZPath}" logout
exit 0
fi
