"""Safe labels for secrets: what logs, metrics and errors show instead of a bot token or an API key."""

from __future__ import annotations

import hashlib

__all__ = ["bot_id_of", "key_fingerprint"]


def bot_id_of(token: str | None) -> str:
    """The public bot id (the part of a token before ``:``), safe to log."""
    if not token:
        return "none"
    return token.split(":", 1)[0] if ":" in token else "?"


def key_fingerprint(key: str) -> str:
    """A short, non-reversible label of an API key, safe to log."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
