"""Reading frames off a market-channel connection in the simulator feed tests."""

from __future__ import annotations

import time
from typing import Any


def read_for(ws: Any, seconds: float) -> list[str]:
    """Every frame that arrives within ``seconds``."""
    out, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            out.append(ws.recv(timeout=left))
        except TimeoutError:
            break
    return out
