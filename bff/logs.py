"""Structured JSON logs with a request id, redacted before they are encoded.

A record is redacted while its data is still structured: the message (with its
%-arguments applied), every ``extra`` field (dicts, lists and tuples walked; a value
under a sensitive key is masked whole), the exception text and traceback, and the
stack. Only then is the line encoded, so masking never breaks the JSON, and a value
is matched as the call site passed it, before any escaping. Whatever a call site
passes (arguments that do not fit the format, objects whose ``__str__`` raises,
bytes, non-string keys, cycles), the record becomes one valid JSON line.

Every string goes through two nets (``redact``):

- exact values registered at start-up (configured keys and vendor credentials),
  also in the escaped forms they take inside JSON, Python reprs and URLs;
- shapes: a JWT, a bearer or basic credential, a ``Cookie:`` header, and any value
  whose name says token, secret, password, key, cookie, session or ticket
  (``name=value``, ``name: value``, ``"name": "value"``, ``('name', 'value')``).

A record below its logger's level is never built, so it costs nothing here; for the
rest the work grows with the fields present.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import re
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

# Set by the request middleware only to ids that redaction leaves unchanged, so
# every line carries it as it is.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

MASK = "[REDACTED]"

# --- registered secrets -------------------------------------------------------------

_MIN_REGISTERED_LENGTH = 6
# How a string is rewritten on its way into a log line: JSON (both ASCII modes),
# Python reprs (either quote style; bytes), URLs. Applied twice over, for text
# that was escaped once before it reached the logger (a JSON body, a repr).
_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda text: json.dumps(text, ensure_ascii=False)[1:-1],
    lambda text: json.dumps(text)[1:-1],
    lambda text: repr(text)[1:-1],
    # With both quotes present, repr picks ' and escapes it: the other style.
    lambda text: repr(text + "'\"")[1:-4],
    lambda text: repr(text.encode("utf-8", "backslashreplace"))[2:-1],
    lambda text: quote(text, safe=""),
    lambda text: quote_plus(text, safe=""),
)
_registered_lock = threading.Lock()
_registered: frozenset[str] = frozenset()
# Swapped whole on registration, so readers never need the lock.
_registered_forms: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Mask this exact value in every future log line (keys, vendor secrets, tokens)."""
    global _registered, _registered_forms
    if not value or len(value) < _MIN_REGISTERED_LENGTH:
        return
    with _registered_lock:
        forms = _escaped_forms(value) - _registered
        if forms:
            _registered |= forms
            _registered_forms = tuple(_registered)


def _escaped_forms(secret: str) -> frozenset[str]:
    forms = {secret}
    layer = {secret}
    for _ in range(2):
        layer = {escape(form) for form in layer for escape in _ESCAPES} - forms
        forms |= layer
    return frozenset(forms)


def _mask_registered(text: str) -> str:
    # Every occurrence of every form, merged, so overlapping secrets both go whole.
    spans: list[tuple[int, int]] = []
    for form in _registered_forms:
        start = text.find(form)
        while start != -1:
            spans.append((start, start + len(form)))
            start = text.find(form, start + 1)
    if not spans:
        return text
    spans.sort()
    pieces: list[str] = []
    kept_from = 0
    masked_to = -1
    for start, end in spans:
        if start > masked_to:
            pieces.append(text[kept_from:start])
            pieces.append(MASK)
        masked_to = max(masked_to, end)
        kept_from = masked_to
    pieces.append(text[kept_from:])
    return "".join(pieces)


# --- shapes ---------------------------------------------------------------------------

_SENSITIVE_WORDS = (
    r"token|secret|passw(?:or)?d|passphrase|api[_-]?key|private[_-]?key|signing[_-]?key"
    r"|encryption[_-]?key|authori[sz]ation|cookie|ticket|session|csrf|credential"
)
_SENSITIVE_KEY = re.compile(_SENSITIVE_WORDS, re.IGNORECASE)
_SHAPES = re.compile(
    rf"""
    (?P<jwt>(?-i:eyJ)[A-Za-z0-9_-]{{5,}}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)
    | (?P<own>\b(?-i:bff[ks]_)[A-Za-z0-9_-]{{16,}})
    | \b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]{{6,}}
    | (?P<header>\b(?:set-)?cookie\s*:[ \t]*)[^\r\n]+
    | (?P<name>(?:{_SENSITIVE_WORDS})[\w.-]*
        (?:\\?["'])?\s*(?:[:=]|,\s*b?(?=["']))\s*)
      (?:
          (?P<dq>"(?:[^"\\]|\\.)*"?)
        | (?P<sq>'(?:[^'\\]|\\.)*'?)
        | (?P<edq>\\"(?:(?!\\")[\s\S])*(?:\\")?)
        | (?P<credential>(?:bearer|basic|digest|token)\s+[^\s"'&;,}}\]]+)
        | (?P<bare>[^\s"'&;,}}\]]+)
      )
    """,
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


def _mask_shape(match: re.Match[str]) -> str:
    if match["jwt"] or match["own"]:
        return MASK
    if match["scheme"]:
        return f"{match['scheme']} {MASK}"
    if match["header"]:
        return match["header"] + MASK
    name = match["name"]
    if match["dq"]:
        return f'{name}"{MASK}"'
    if match["sq"]:
        return f"{name}'{MASK}'"
    if match["edq"]:
        return f'{name}\\"{MASK}\\"'
    return name + MASK


# bff's own secrets carry a prefix: personal API key tokens bffk_, partner client
# secrets bffs_ (client ids, bffp_, are public).
# Every shape holds one of these words (casefolded), and most strings hold none: a
# search for them is several times cheaper than the shapes themselves.
_SHAPE_WORDS = re.compile(rf"eyj|bff[ks]_|bearer|basic|{_SENSITIVE_WORDS}")


def redact(text: str) -> str:
    """One string with registered secrets and token-shaped values masked."""
    text = _mask_registered(text)
    if _SHAPE_WORDS.search(text.casefold()) is None:
        return text
    return _SHAPES.sub(_mask_shape, text)


def _is_sensitive(key: object) -> bool:
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


def _masks_under_sensitive_key(value: object) -> bool:
    # An absent value or a flag says nothing secret; anything else goes whole.
    return value is not None and not isinstance(value, bool)


# --- structured values ----------------------------------------------------------------

_MAX_DEPTH = 12
_MAX_NODES = 2000
_ELIDED = "[...]"
_INT_LIMIT = 1 << 64


def _text(value: object) -> str:
    """``str(value)``, else ``repr(value)``, else a placeholder: never raises."""
    for render in (str, repr):
        try:
            rendered = render(value)
        except Exception:  # noqa: S112 - any failure of a call site's object falls through
            continue
        if isinstance(rendered, str):
            return str.__str__(rendered)
    try:
        name = type(value).__qualname__
    except Exception:
        name = "object"
    return f"<unprintable {name}>"


class _Walk:
    """Copies a value with every string redacted and every sensitive-keyed value
    masked, bounded in depth and size, cycles cut.

    ``for_json`` turns everything into JSON data; otherwise leaves that are not
    containers stay as they are, so %-formatting renders them as it would have
    (the finished message is redacted as a whole afterwards).
    """

    def __init__(self, *, for_json: bool) -> None:
        self.for_json = for_json
        self.budget = _MAX_NODES
        self.open: set[int] = set()

    def value(self, value: object, depth: int = 0) -> Any:
        self.budget -= 1
        if self.budget < 0 or depth > _MAX_DEPTH:
            return _ELIDED
        if isinstance(value, Mapping):
            return self._enter(value, lambda: self._mapping(value, depth + 1))
        if isinstance(value, list | tuple) or (
            self.for_json and isinstance(value, set | frozenset)
        ):
            return self._enter(value, lambda: self._sequence(value, depth + 1))
        return self._leaf(value) if self.for_json else value

    def key(self, key: object) -> str:
        return redact(key if type(key) is str else _text(key))

    def field(self, key: object, value: object, depth: int = 0) -> Any:
        """``value`` as found under ``key``: masked whole when the key is sensitive."""
        if _is_sensitive(key) and _masks_under_sensitive_key(value):
            return MASK
        return self.value(value, depth)

    def _enter(self, container: object, copy: Callable[[], Any]) -> Any:
        if id(container) in self.open:
            return _ELIDED
        self.open.add(id(container))
        try:
            return copy()
        except Exception:  # a container whose iteration raises
            return f"<unreadable {type(container).__name__}>"
        finally:
            self.open.discard(id(container))

    def _mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        pairs = [(key, self.field(key, item, depth)) for key, item in list(mapping.items())]
        if self.for_json:
            return {self.key(key): item for key, item in pairs}
        return dict(pairs)

    def _sequence(
        self, sequence: list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any], depth: int
    ) -> list[Any] | tuple[Any, ...]:
        items = list(sequence)
        if len(items) == 2 and _is_sensitive(items[0]):  # a (name, value) pair
            copied = [self.value(items[0], depth), self.field(items[0], items[1], depth)]
        else:
            copied = [self.value(item, depth) for item in items]
        if self.for_json or isinstance(sequence, list):
            return copied
        return tuple(copied)

    def _leaf(self, value: object) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return redact(str.__str__(value))
        if isinstance(value, int):
            number = int.__int__(value)
            return number if -_INT_LIMIT < number < _INT_LIMIT else _text(number)
        if isinstance(value, float):
            real = float.__float__(value)
            return real if math.isfinite(real) else repr(real)
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                return redact(bytes(value).decode("utf-8", "replace"))
            except Exception:
                return f"<unreadable {type(value).__name__}>"
        return redact(_text(value))


# --- the record -------------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# Fields of the line itself; an ``extra`` of the same name is written as ``extra_<name>``.
_LINE_FIELDS = frozenset(
    {"time", "level", "logger", "message", "request_id", "args", "exception", "stack"}
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


# Arguments that hold no keys to mask: formatted as they are (an access log's are).
_PLAIN_ARGS = frozenset({str, int, float, bool, type(None)})


def _message(record: logging.LogRecord) -> tuple[str, Any]:
    """The redacted message, and the arguments when they do not fit the format."""
    msg = record.msg
    # A dict or list logged as the message gets its sensitive keys masked too.
    text = msg if type(msg) is str else _text(_Walk(for_json=False).value(msg))
    args = record.args
    if not args:
        return redact(text), None
    if type(args) is not tuple or any(type(arg) not in _PLAIN_ARGS for arg in args):
        args = _Walk(for_json=False).value(args)
    try:
        text = text % args
    except Exception:
        # The call site's format and arguments do not fit: keep both, safely.
        return redact(text), _Walk(for_json=True).value(args)
    return redact(text), None


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        try:
            return redact(formatter.formatException(record.exc_info))
        except Exception:  # not a real exc_info: say what it was, redacted
            return redact(f"traceback unavailable: {_text(record.exc_info)}")
    if record.exc_text:
        return redact(_text(record.exc_text))
    return None


# The ``extra`` key of fields a call site built from safe parts only (fixed words,
# numbers, route templates, checked ids): written as they are, without the walk, so
# the access record (one per request) costs little. Anything else goes in other extras.
TRUSTED = "bff_trusted"
_TRUSTED_TYPES = frozenset({str, int, float, bool, type(None)})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras,
    exception."""

    def format(self, record: logging.LogRecord) -> str:
        message, unformatted_args = _message(record)
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        if unformatted_args is not None:
            entry["args"] = unformatted_args
        extras = record.__dict__.keys() - _STANDARD_ATTRS
        trusted = record.__dict__.get(TRUSTED)
        if type(trusted) is dict:
            extras.discard(TRUSTED)
            for name, value in trusted.items():
                if type(name) is str and name not in _LINE_FIELDS:
                    entry[name] = value if type(value) in _TRUSTED_TYPES else MASK
        if extras:
            walk = _Walk(for_json=True)
            for key, value in record.__dict__.items():
                if key not in extras or (isinstance(key, str) and key.startswith("_")):
                    continue
                name = walk.key(key)
                if name in _LINE_FIELDS:
                    name = f"extra_{name}"
                entry[name] = walk.field(key, value)
        exception = _exception(self, record)
        if exception is not None:
            entry["exception"] = exception
        if record.stack_info:
            entry["stack"] = redact(_text(record.stack_info))
        return _encode(entry)


_second: tuple[int, str] = (-1, "")
_MILLISECONDS = tuple(f".{millisecond:03d}+00:00" for millisecond in range(1000))


def _timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds; the part up to the second is made once a second."""
    global _second
    whole, millisecond = divmod(int(created * 1000), 1000)
    if _second[0] != whole:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return _second[1] + _MILLISECONDS[millisecond]


def _encode(entry: dict[str, Any]) -> str:
    try:
        # orjson: several times faster than the json module on every line; it refuses
        # what it cannot write exactly (a lone surrogate, an integer beyond 64 bits), and
        # the json module, which writes those, takes over.
        return orjson.dumps(entry).decode()
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        line = _ENCODER.encode(entry)
    except (TypeError, ValueError, RecursionError):  # a bug here must still give a line
        line = json.dumps(
            {key: _text(entry[key]) for key in ("time", "level", "logger")}
            | {"message": "log record could not be encoded"}
        )
    # A lone surrogate (bytes decoded with surrogateescape) is no UTF-8: write U+FFFD.
    if not line.isascii():
        line = _LONE_SURROGATE.sub("\ufffd", line)
    return line


# --- lines written directly ----------------------------------------------------------
#
# A record logged once per request (the access record) is cheaper without a
# ``LogRecord`` and the logging machinery (3 µs a line against 12): when it would reach
# exactly one handler, a plain StreamHandler with a JsonFormatter and no filter anywhere
# (what configure_logging sets up), its caller writes the same line straight to that
# handler's stream; any other set-up (tests capturing records, extra handlers,
# filters) goes through ``logging`` as usual.


def direct_handler(logger: logging.Logger, level: int) -> logging.StreamHandler[Any] | None:
    """The one handler a record of ``level`` from ``logger`` would reach, when it is a
    plain JSON stream handler and no filter could drop or change the record."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        found += current.handlers
        if not current.propagate:
            break
        current = current.parent
    if len(found) != 1:
        return None
    handler = found[0]
    if (
        type(handler) is not logging.StreamHandler
        or type(handler.formatter) is not JsonFormatter
        or handler.filters
        or level < handler.level
    ):
        return None
    return handler


def write_lines(handler: logging.StreamHandler[Any], text: str) -> None:
    """Write finished lines (each ending in the handler's terminator) in one write, as
    the handler would: under its lock, flushed, an error reported and never raised."""
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write(text)
            handler.stream.flush()
        except Exception:  # as StreamHandler.emit: report it, never fail the request
            handler.handleError(logging.makeLogRecord({"msg": "access records not written"}))


def json_value(value: str | float | None) -> str:
    """One value as :class:`JsonFormatter` writes it inside a line."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, ValueError):
        pass
    text = _ENCODER.encode(value)
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def redaction_epoch() -> object:
    """Changes whenever a secret is registered: what was redacted before must be redone."""
    return _registered_forms


def line_time(created: float) -> str:
    """The ``time`` of a line logged at ``created`` (seconds since the epoch)."""
    return _timestamp(created)


# Access messages repeat (the same method, path and status): each is redacted once.
_MEMO_SIZE = 1024
_redacted_memo: dict[str, str] = {}
_memo_forms: tuple[str, ...] = ()


def redact_repeated(text: str) -> str:
    """``redact(text)``, remembered while the registered secrets stay the same."""
    global _memo_forms
    if _memo_forms is not _registered_forms:
        _redacted_memo.clear()
        _memo_forms = _registered_forms
    redacted = _redacted_memo.get(text)
    if redacted is None:
        redacted = redact(text)
        if len(_redacted_memo) >= _MEMO_SIZE:
            _redacted_memo.clear()
        _redacted_memo[text] = redacted
    return redacted


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every logger (uvicorn's too) through one redacting JSON handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # The lines carry no source location, thread or process: skip collecting them
    # (the logging HOWTO's "Optimization"; findCaller walks the stack on every record).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
