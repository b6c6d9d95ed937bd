"""A real Pacemaker cluster on one machine, in namespaces, in an Azure-like VNet.

``network`` builds the namespaces (VNet, VMs, client); ``fabric`` is the VNet's dataplane,
which follows the local ARM; ``pacemaker`` runs Corosync + Pacemaker nodes; ``prober`` is
the client that measures what users see; ``lab`` puts them together around a local stack;
``scenarios`` stages failovers and measures each one's outage. Tests: ``tests/cluster``;
benchmark: ``python -m bench.pacemaker``.
"""
