"""Node-side pieces: the ipmover client (one file to copy), EXPRESSCLUSTER scripts, OCF agent."""
