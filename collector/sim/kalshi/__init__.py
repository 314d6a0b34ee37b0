"""The simulated Kalshi (Trade API v2 REST): events with nested markets, batch and single order
books in the ``orderbook_fp`` shape, combo markets, and a token-bucket 429 without Retry-After."""
