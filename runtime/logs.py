"""Logging set-up shared by the services: one line per event, `key=value` fields; as text,
or as one JSON object per line (`[logging] format = "json"`, CS_LOG_FORMAT=json) whose keys
include every `key=value` field of the message, for Loki/Elasticsearch."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

FORMATS = ("text", "json")
_FIELD = re.compile(r'(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_fields(message: str) -> dict[str, str]:
    """The `key=value` fields of a message written with `fields()` (quotes removed)."""
    out: dict[str, str] = {}
    for key, value in _FIELD.findall(message):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"')
        out.setdefault(key, value)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, service, logger, msg, the message's fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        message = record.getMessage()
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "service": self.service, "logger": record.name,
            "msg": message}
        for key, value in parse_fields(message).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup(service: str, level: str = "INFO", fmt: str = "text") -> logging.Logger:
    """Configure the root logger for one service process and return its logger."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s service={service} %(name)s: %(message)s",
        force=True,
    )
    if fmt == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter(service))
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
