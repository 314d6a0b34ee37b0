"""The poller (hot path): the loop, per-venue lanes, fetch threads, scheduling on monotonic time."""
