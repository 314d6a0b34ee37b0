"""The feed faults' control keys: their defaults (from the ``collector sim`` flags), their
validation, and which of them are one-shot actions rather than settings.

They live in ``collector.sim.faults.FaultEngine.cfg[venue]`` next to the REST faults, so
``POST /_sim/control`` sets, shows and resets both the same way; the feeds read them on every
message. Nothing here imports the rest of the simulator (FaultEngine imports this module).
"""

from __future__ import annotations

from typing import Any

# Fractions of change messages (Polymarket price_change, Limitless orderbookUpdate), drawn per
# message and connection; ws_bad_hash_rate is per price_change entry (Polymarket only).
RATE_KEYS = ("ws_drop_rate", "ws_dup_rate", "ws_reorder_rate", "ws_bad_hash_rate")
# Fractions of trade messages (Polymarket last_trade_price, Kalshi trade), per message and
# connection: sent twice; held back until after the connection's next trade message; one field
# left out (size or the trade's id).
TRADE_RATE_KEYS = ("ws_trade_dup_rate", "ws_trade_reorder_rate", "ws_trade_missing_rate")
# ws_disconnect_every_s: drop every connection of the venue this often (0 = off).
NUM_KEYS = ("ws_disconnect_every_s",)
# ws_send_queue_max: messages a connection may have waiting (ours plus the transport's) before
# it is dropped as a slow consumer.
INT_KEYS = ("ws_send_queue_max",)
# ws_snapshot_on_subscribe: Limitless sends each newly subscribed market's book at once. Whether
# the real venue does is unconfirmed, so it is off by default and clients must fetch REST.
BOOL_KEYS = ("ws_snapshot_on_subscribe",)
# ws_stall_ids: tokens (Polymarket) or slugs (Limitless) the feed goes silent about while REST
# keeps moving; a list replaces the previous one, [] ends the stall.
LIST_KEYS = ("ws_stall_ids",)
# One-shot actions, not kept: drop (ws_disconnect) or silence for good (ws_stall) the open
# connections of the venue: true = all of them, an integer = that many, picked at random.
ACTION_KEYS = ("ws_disconnect", "ws_stall")
SETTING_KEYS = RATE_KEYS + TRADE_RATE_KEYS + NUM_KEYS + INT_KEYS + BOOL_KEYS + LIST_KEYS
KEYS = frozenset(SETTING_KEYS + ACTION_KEYS)
DEFAULT_QUEUE_MAX = 20_000


def defaults(args: Any = None) -> dict[str, Any]:
    g = (lambda k, d: getattr(args, k, d) if args is not None else d)  # noqa: E731
    return {
        "ws_drop_rate": float(g("ws_drop_rate", 0.0) or 0.0),
        "ws_dup_rate": float(g("ws_dup_rate", 0.0) or 0.0),
        "ws_reorder_rate": float(g("ws_reorder_rate", 0.0) or 0.0),
        "ws_bad_hash_rate": float(g("ws_bad_hash_rate", 0.0) or 0.0),
        **{k: float(g(k, 0.0) or 0.0) for k in TRADE_RATE_KEYS},
        "ws_disconnect_every_s": float(g("ws_disconnect_every_s", 0.0) or 0.0),
        "ws_send_queue_max": int(g("ws_send_queue_max", DEFAULT_QUEUE_MAX) or DEFAULT_QUEUE_MAX),
        "ws_snapshot_on_subscribe": bool(g("ws_snapshot_on_subscribe", False)),
        "ws_stall_ids": [],
    }


def problem(body: dict[str, Any]) -> str | None:
    """Why ``body``'s feed keys are refused, or None when they are all right."""
    for k in RATE_KEYS + TRADE_RATE_KEYS:
        if k in body and not (_num(body[k]) and 0 <= body[k] <= 1):
            return f"{k} must be a number in [0, 1]"
    for k in NUM_KEYS:
        if k in body and not (_num(body[k]) and body[k] >= 0):
            return f"{k} must be a number >= 0"
    for k in INT_KEYS:
        if k in body and not (type(body[k]) is int and body[k] >= 1):
            return f"{k} must be an integer >= 1"
    for k in BOOL_KEYS:
        if k in body and not isinstance(body[k], bool):
            return f"{k} must be true or false"
    for k in LIST_KEYS:
        if k in body and not (isinstance(body[k], list) and all(isinstance(x, str) for x in body[k])):
            return f"{k} must be a list of strings"
    for k in ACTION_KEYS:
        if k in body and not (body[k] is True or (type(body[k]) is int and body[k] >= 0)):
            return f"{k} must be true (all connections) or a count >= 0"
    return None


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
