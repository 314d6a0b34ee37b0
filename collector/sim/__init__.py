"""Local venue simulator: Polymarket Gamma + CLOB and Limitless, in one process.

``python -m collector sim --port 0`` serves all three APIs on 127.0.0.1 under the path
prefixes ``/gamma``, ``/clob`` and ``/limitless``, both venues' push feeds on the same port
(Polymarket's market channel at ``/ws/market``, Limitless's Socket.IO namespace ``/markets``),
and prints the ``COLLECTOR_*`` base-URL variables on stdout. Books follow a seeded random walk
advanced lazily by simulated time; faults, rate limits and the market lifecycle are driven by
flags and by ``/_sim/*`` control endpoints. ``collector.sim.testing.run_sim`` starts one as a subprocess for tests.

Layout: ``clock`` (seeds, tick, lazy book schedule) and ``walk`` (the book random walk) are
shared; each venue is a subpackage (``polymarket/``, ``limitless/``: market, books, catalogue,
venue state, routes); ``state`` composes the venues, ``pipeline`` + ``faults`` + ``replies`` +
``requestlog`` are the request path, ``feeds/`` the push feeds (docs/simulator.md), ``control``
the ``/_sim/*`` plane, ``server`` the app.
"""
