"""Logging set-up shared by the services: one line per event, `key=value` fields."""

from __future__ import annotations

import logging
import sys


def setup(service: str, level: str = "INFO") -> logging.Logger:
    """Configure the root logger for one service process and return its logger."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s service={service} %(name)s: %(message)s",
        force=True,
    )
    # nats-py logs every reconnect attempt at ERROR with a traceback; our callbacks say it once.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    return logging.getLogger(service)


def fields(**values: object) -> str:
    """Render `values` as `key=value` pairs, quoting values that contain spaces."""
    out = []
    for key, value in values.items():
        text = str(value)
        if not text or any(c in text for c in ' ="'):
            text = '"' + text.replace('"', '\\"') + '"'
        out.append(f"{key}={text}")
    return " ".join(out)
