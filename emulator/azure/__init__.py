"""Local Azure stand-in: fake ARM (network + compute reads), IMDS and token issuer.

Started with ``python -m emulator azure --state DIR``; see docs/local-azure.md.
The real azure-mgmt-network and azure-identity SDKs talk to it over sockets.
"""
