"""Prefect flows: thin wiring of the ``collector`` core into Prefect (no business logic here)."""
