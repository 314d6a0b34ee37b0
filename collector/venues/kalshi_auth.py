"""Optional request signing for Kalshi (a key only raises the budget: market data is public).

Three headers: ``KALSHI-ACCESS-KEY`` (the key id), ``KALSHI-ACCESS-TIMESTAMP`` (ms) and
``KALSHI-ACCESS-SIGNATURE``: base64 of an RSA-PSS signature (SHA-256, MGF1-SHA256, salt = digest
length) over ``timestamp + METHOD + path``, the path with its ``/trade-api/v2`` prefix and without
the query string. Ed25519 keys (reportedly accepted since 2026-09, UNCONFIRMED) sign the same
message. Neither the key nor the key id ever appears in a log line or an error message.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from pydantic import SecretStr

from collector.model.errors import ConfigError


class Signer:
    """Signs one request at a time; thread-safe (the key objects are immutable)."""

    __slots__ = ("_key_id", "_key")

    def __init__(self, key_id: SecretStr, private_key: SecretStr | None, private_key_file: Path | None) -> None:
        if private_key is not None:
            pem = private_key.get_secret_value().encode()
        elif private_key_file is not None:
            try:
                pem = Path(private_key_file).read_bytes()
            except OSError as e:
                raise ConfigError(f"kalshi.private_key_file: cannot read it ({type(e).__name__})") from None
        else:
            raise ConfigError("kalshi.api_key_id: needs private_key or private_key_file")
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # The library's message may quote the input: say only what failed.
            raise ConfigError("kalshi.private_key: not an unencrypted PEM private key") from None
        if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
            raise ConfigError("kalshi.private_key: an RSA (or Ed25519) key is needed")
        self._key_id = key_id.get_secret_value()
        self._key = key

    def __repr__(self) -> str:
        return "Signer(<redacted>)"

    def headers(self, method: str, path: str, ts_ms: int | None = None) -> dict[str, str]:
        ts = str(int(time.time() * 1000) if ts_ms is None else ts_ms)
        return {
            "KALSHI-ACCESS-KEY": self._key_id,
            "KALSHI-ACCESS-TIMESTAMP": ts,
            "KALSHI-ACCESS-SIGNATURE": self.sign(f"{ts}{method.upper()}{path.split('?', 1)[0]}"),
        }

    def sign(self, message: str) -> str:
        data = message.encode()
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            sig = key.sign(data)
        else:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            sig = key.sign(data, pss, hashes.SHA256())
        return base64.b64encode(sig).decode()
