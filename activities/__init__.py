"""Activities: thin I/O wrappers around ARM's network API (azure-mgmt-network)."""
