"""The mover's decisions, as plain functions and records with no Azure objects.

``orchestrations/``, ``activities/`` and ``http_api/`` wire these into the
Function app; everything here is tested directly.
"""
