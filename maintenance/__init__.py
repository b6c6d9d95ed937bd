"""Housekeeping of the task hub: purge of finished requests past their retention."""
