"""The simulator's push feeds: Polymarket's market channel (a plain WebSocket at ``/ws/market``)
and Limitless's Socket.IO namespace ``/markets`` (at ``/socket.io``), on the same port as REST.

Both are driven by the same lazy book clock as REST (``collector.sim.clock.LazyBook``): a book
somebody subscribed to reports each of its changes to its feed, whoever made it catch up, so
every change goes out exactly once and REST serves the same state, with the same timestamp and
hash, at the same instant. Modules: ``timer`` (advances watched books when they are due),
``conn`` (one client's send queue, its faults and counters), ``poly_msgs`` (the Polymarket
frames, shaped like the captured ones), ``polymarket_ws`` and ``limitless_sio`` (the two
feeds), ``faults`` (the feed control keys) and ``hub`` (composes them, the ASGI entry and
``/_sim/feeds``).
"""
