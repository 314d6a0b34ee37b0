"""Operator views over the recorded files: status, tail, stats, coverage."""
