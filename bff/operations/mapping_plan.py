"""The CSV import's pure half: parse the file and plan it against the database's
current state. No I/O, so :mod:`bff.operations.mapping_csv` can run it in a worker
process.

What crosses between processes stays small and cheap to (un)pickle: the state
arrives as one JSON text per table (:class:`Snapshot`), and the rows to add and to
remove leave as JSON texts of ``chunk`` rows each, which the database statements
read as they are. The server thus never holds one Python object per row.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import json
from collections.abc import Sequence
from typing import Literal

from bff import identifiers
from bff.errors import InvalidIdentifierError

HEADER = ("email", "tenant_id", "sub_tenant_id")
MAX_ERRORS = 1000
# The preview lists at most this many of the removals (the console shows 1000).
MAX_REMOVALS = 1000
Mode = Literal["merge", "replace"]
MappingKey = tuple[int, str, str]


@dataclasses.dataclass(frozen=True)
class LineError:
    line: int
    message: str


@dataclasses.dataclass(frozen=True)
class Row:
    line: int
    email: str
    tenant_id: str
    sub_tenant_id: str


@dataclasses.dataclass(frozen=True)
class Removal:
    email: str
    tenant_id: str
    sub_tenant_id: str


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The database as the plan needs it, each table a JSON array of arrays:
    ``users`` [id, email], ``pairs`` [tenant_id, sub_tenant_id], ``mappings``
    [user_id, tenant_id, sub_tenant_id]."""

    users: str
    pairs: str
    mappings: str

    @property
    def size(self) -> int:
        return len(self.users) + len(self.pairs) + len(self.mappings)


@dataclasses.dataclass(frozen=True)
class Plan:
    added: int
    removed: int
    unchanged: int
    # Sorted by line, the first MAX_ERRORS; nothing may be applied unless empty.
    errors: list[LineError]
    # What ``replace`` takes away, the first MAX_REMOVALS, for the preview.
    removals: list[Removal]
    # JSON arrays of [user_id, tenant_id, sub_tenant_id], ``chunk`` rows each.
    adds: list[str]
    removes: list[str]


def plan(data: bytes, snapshot: Snapshot, mode: Mode, chunk: int) -> Plan:
    """The import of ``data`` against ``snapshot``; pure, for a worker."""
    rows, errors = parse(data)
    users: dict[str, int] = {email: user_id for user_id, email in json.loads(snapshot.users)}
    pairs = {(tenant_id, sub_tenant_id) for tenant_id, sub_tenant_id in json.loads(snapshot.pairs)}
    existing = {(u, t, s) for u, t, s in json.loads(snapshot.mappings)}
    wanted: list[MappingKey] = []
    for row in rows:
        user_id = users.get(row.email)
        if user_id is None:
            errors.append(LineError(row.line, f"no user {row.email}"))
            continue
        if (row.tenant_id, row.sub_tenant_id) not in pairs:
            errors.append(LineError(row.line, f"no pair ({row.tenant_id}, {row.sub_tenant_id})"))
            continue
        wanted.append((user_id, row.tenant_id, row.sub_tenant_id))
    adds = [key for key in wanted if key not in existing]
    removes = sorted(existing - set(wanted)) if mode == "replace" else []
    emails = {user_id: email for email, user_id in users.items()}
    return Plan(
        added=len(adds),
        removed=len(removes),
        unchanged=len(wanted) - len(adds),
        errors=sorted(errors, key=lambda error: error.line)[:MAX_ERRORS],
        # The snapshot is one statement's view: every mapped user is in it.
        removals=[Removal(emails[u], t, s) for u, t, s in removes[:MAX_REMOVALS]],
        adds=_chunks(adds, chunk),
        removes=_chunks(removes, chunk),
    )


def plan_in_worker(data: bytes, snapshot: Snapshot, mode: Mode, chunk: int) -> Plan:
    """:func:`plan` with the garbage collector off, for a worker process (the switch is
    process-wide): reference counting frees the rows, the collector would only walk
    them again and again (a quarter of the time for 100,000 rows)."""
    gc.disable()
    try:
        return plan(data, snapshot, mode, chunk)
    finally:
        gc.enable()


def parse(data: bytes) -> tuple[list[Row], list[LineError]]:
    """The file's rows and its problems (duplicates included)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [LineError(line, "the file is not UTF-8 text")]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    errors: list[LineError] = []
    rows: list[Row] = []
    seen: dict[tuple[str, str, str], int] = {}
    try:
        header = next(reader, None)
        if header is None or tuple(cell.strip().lower() for cell in header) != HEADER:
            errors.append(
                LineError(1, "the first line must be the header email,tenant_id,sub_tenant_id")
            )
            return [], errors
        for cells in reader:
            line = reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(HEADER):
                errors.append(
                    LineError(
                        line,
                        f"expected 3 columns (email,tenant_id,sub_tenant_id), found {len(cells)}",
                    )
                )
                continue
            try:
                email = identifiers.email(cells[0])
                tenant_id = identifiers.tenant_id(cells[1])
                sub_tenant_id = identifiers.sub_tenant_id(cells[2])
            except InvalidIdentifierError as exc:
                errors.append(LineError(line, str(exc)))
                continue
            key = (email, tenant_id, sub_tenant_id)
            if key in seen:
                errors.append(LineError(line, f"duplicate of line {seen[key]}"))
                continue
            seen[key] = line
            rows.append(Row(line, *key))
    except csv.Error as exc:
        errors.append(LineError(reader.line_num, f"not valid CSV: {exc}"))
    return rows, errors


def _chunks(mappings: Sequence[MappingKey], size: int) -> list[str]:
    return [
        json.dumps(mappings[start : start + size], separators=(",", ":"))
        for start in range(0, len(mappings), size)
    ]
