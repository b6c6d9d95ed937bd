"""The HTTP API (v1) of the mover, as a Durable blueprint."""
