"""The core command line (no Prefect): config, sim, discover, poll, run and the operator views."""
