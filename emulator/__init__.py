"""Local stand-ins for what these machines cannot reach.

- ``emulator.host``: an Azure Functions host with the Durable extension.
- ``emulator.azure``: Azure Resource Manager's network API, instance metadata
  and the managed-identity token issuer.

Run ``python -m emulator host --help`` or ``python -m emulator azure --help``.
"""
