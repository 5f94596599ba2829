"""Say a missing optional source only once per process: metrics are scraped every few seconds."""

from __future__ import annotations

import logging
import threading

_seen: set[str] = set()
_lock = threading.Lock()


def log_once(logger: logging.Logger, key: str, message: str) -> None:
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    logger.warning(message)
