"""Structured JSON logs with a request id, redacted at the formatter.

Redaction happens on the finished line, so a token or secret is masked whatever
the call site passed it as: the message, an argument, an ``extra`` field or a
traceback. Two nets: exact values registered at start-up (configured secrets),
and patterns for anything that looks like a JWT, a bearer credential, or a
``token=``/``secret=``/``cookie=``/``ticket=`` pair.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

MASK = "[REDACTED]"
_SENSITIVE_NAMES = (
    r"(?:access_|refresh_|id_|csrf_|session_|api_|client_)?token|[a-z_-]*secret|password"
    r"|api[_-]?key|x-api-key|authorization|cookie|set-cookie|ticket|session(?:_id)?|csrf_token"
    r"|__host-bff_session|bff_embed_session"
)
_PATTERNS = (
    # A JWT: three base64url parts, the first one a JSON header.
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
    # name=value in queries, forms, cookies and kv logs; "name": "value" in JSON;
    # name: value in header dumps.
    re.compile(
        rf"""(?ix)(?P<name>["']?\b(?:{_SENSITIVE_NAMES})\b["']?\s*(?:=|:)\s*["']?)"""
        r"""(?P<value>[^\s"'&;,}]+)"""
    ),
)
_registered: set[str] = set()
_registered_lock = threading.Lock()
_MIN_REGISTERED_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Mask this exact value in every future log line (keys, vendor secrets, tokens)."""
    if value and len(value) >= _MIN_REGISTERED_LENGTH:
        with _registered_lock:
            _registered.add(value)


def redact(text: str) -> str:
    for secret in sorted(_registered, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(MASK, text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _PATTERNS[2].sub(lambda m: f"{m.group('name')}{MASK}", text)


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every logger (uvicorn's too) through one redacting JSON handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
