"""What one simulated venue provides to the composition in ``collector.sim.state``.

A venue owns its catalogue and books and answers the ``/_sim/markets`` lifecycle actions;
its HTTP routes live next to it (``<venue>/routes.py``). Adding a venue means one new
subpackage with a ``VenueSim`` subclass and a ``routes`` function, listed in
``collector.sim.state.SimState`` and ``collector.sim.server.ROUTES``.

A venue tells its ``watchers`` (the feeds, ``collector.sim.feeds``) about lifecycle changes the
feeds announce: ``notify("added" | "closed" | "expired" | "updated" | "tick", market, **info)``.
"""

from __future__ import annotations

from typing import Any, Callable

from collector.sim.clock import SimClock, SimError

# Every venue the simulator serves, in the order catalogues are built, listed and churned.
VENUES = ("polymarket", "limitless", "kalshi")


class VenueSim:
    """Base class: the shared ``add`` loop; subclasses fill in the rest."""

    name = ""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.watchers: list[Callable[[str, Any, dict[str, Any]], None]] = []

    def notify(self, event: str, market: Any, **info: Any) -> None:
        for w in self.watchers:
            w(event, market, info)

    def add(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        count = int(spec.get("count", 1))
        if not 1 <= count <= 1000:
            raise SimError("count must be 1..1000")
        out: list[dict[str, Any]] = []
        for _ in range(count):
            out.extend(self.add_one(spec))
        return out

    def add_one(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Open one market (or group) from ``spec``; the info of every market it made."""
        raise NotImplementedError

    def select(self, spec: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    def close(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def expire(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def update(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def churn(self, now: float) -> tuple[list, list]:
        """Retire what ended by ``now``, close one random market, open one: (closed, added)."""
        raise NotImplementedError

    def info(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def size(self) -> int:
        """Catalogue entries, for /_sim/health."""
        raise NotImplementedError

    def summary(self) -> str:
        """One phrase for the start-up line on stderr."""
        raise NotImplementedError
