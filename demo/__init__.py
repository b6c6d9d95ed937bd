"""``make demo``: the local end-to-end demonstration."""
