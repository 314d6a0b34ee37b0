"""The poller (hot path), on monotonic time: ``loop`` (the one loop thread), ``lane`` (one venue's
state and decisions), ``fetch`` (the fetch threads), and the lane's policies: ``backoff``,
``cooldown``, ``aimd``, ``due`` (schedule), ``stats`` (rolling percentiles), ``counters``.
Request pacing lives in :mod:`collector.venues.pacing`, records in :mod:`collector.model.records`."""
