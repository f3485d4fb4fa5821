"""Mappings as CSV: ``email,tenant_id,sub_tenant_id`` with a header row.

An import is checked completely before anything is written: every problem is
reported with its line number (the header is line 1) and then nothing is applied.
Parsing and planning run in a worker thread and the writes go in chunks, so a
100,000-row file does not hold up other requests; the whole apply is one
transaction, all or nothing.

An export is meant to be opened in a spreadsheet, which would run a cell starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula. Ids cannot
start with those, but an e-mail address can: such a cell is written with a leading
``'`` (OWASP's advice), which spreadsheets hide. The import does not strip it, so
such an address must be corrected before the file is imported again.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from typing import Literal

import anyio.to_thread
from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.errors import InvalidIdentifierError
from bff.operations import audit
from bff.operations.live import Live, mappings_removed
from bff.store.database import Database, conflict_means_exists
from bff.store.models import SubTenant, User, UserScope

HEADER = ("email", "tenant_id", "sub_tenant_id")
MAX_ERRORS = 1000
CHUNK = 500
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Mode = Literal["merge", "replace"]


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
class ImportReport:
    added: int
    removed: int
    unchanged: int
    errors: list[LineError]
    # What ``replace`` takes away, for the preview.
    removals: list[Removal]
    applied: bool


def parse(data: bytes) -> tuple[list[Row], list[LineError]]:
    """The file's rows and its problems (duplicates included); pure, for a thread."""
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


@dataclasses.dataclass(frozen=True)
class _Plan:
    adds: list[tuple[int, str, str]]
    removes: list[tuple[int, str, str]]
    unchanged: int
    errors: list[LineError]


def _plan(
    rows: Sequence[Row],
    users: dict[str, int],
    pairs: set[tuple[str, str]],
    existing: set[tuple[int, str, str]],
    mode: Mode,
) -> _Plan:
    errors: list[LineError] = []
    wanted: list[tuple[int, str, str]] = []
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
    unchanged = len(wanted) - len(adds)
    removes = sorted(existing - set(wanted)) if mode == "replace" else []
    return _Plan(adds, removes, unchanged, errors)


async def import_csv(
    database: Database,
    actor: str,
    data: bytes,
    *,
    mode: Mode = "merge",
    dry_run: bool = False,
    live: Live | None = None,
) -> ImportReport:
    """Check the file; unless it has errors or this is a dry run, apply it in one
    transaction. ``replace`` makes the file the complete mapping table."""
    rows, errors = await anyio.to_thread.run_sync(parse, data)
    changed = "the mappings changed while the import ran; nothing was applied, try again"
    with conflict_means_exists(changed):
        report, removed = await _check_and_apply(database, actor, rows, errors, mode, dry_run)
    await mappings_removed(live, removed)
    return report


async def _check_and_apply(
    database: Database,
    actor: str,
    rows: list[Row],
    errors: list[LineError],
    mode: Mode,
    dry_run: bool,
) -> tuple[ImportReport, list[tuple[int, str, str]]]:
    removed: list[tuple[int, str, str]] = []
    async with database.session() as db:
        users = {
            email: user_id
            for user_id, email in (await db.execute(select(User.id, User.email))).all()
        }
        pairs = {
            (t, s) for t, s in (await db.execute(select(SubTenant.tenant_id, SubTenant.id))).all()
        }
        existing = {
            (u, t, s)
            for u, t, s in (
                await db.execute(
                    select(UserScope.user_id, UserScope.tenant_id, UserScope.sub_tenant_id)
                )
            ).all()
        }
        plan = await anyio.to_thread.run_sync(_plan, rows, users, pairs, existing, mode)
        errors = sorted(errors + plan.errors, key=lambda error: error.line)
        emails = {user_id: email for email, user_id in users.items()}
        removals = [Removal(emails[u], t, s) for u, t, s in plan.removes]
        apply = not errors and not dry_run
        if apply:
            await _apply(db, plan)
            await audit.record(
                db,
                actor,
                "mapping.import",
                mode,
                {
                    "added": len(plan.adds),
                    "removed": len(plan.removes),
                    "unchanged": plan.unchanged,
                },
            )
            removed = plan.removes
    report = ImportReport(
        added=len(plan.adds),
        removed=len(plan.removes),
        unchanged=plan.unchanged,
        errors=errors[:MAX_ERRORS],
        removals=removals,
        applied=apply,
    )
    return report, removed


async def _apply(db: AsyncSession, plan: _Plan) -> None:
    for start in range(0, len(plan.removes), CHUNK):
        chunk = plan.removes[start : start + CHUNK]
        await db.execute(
            delete(UserScope).where(
                tuple_(UserScope.user_id, UserScope.tenant_id, UserScope.sub_tenant_id).in_(chunk)
            )
        )
    for start in range(0, len(plan.adds), CHUNK):
        chunk = plan.adds[start : start + CHUNK]
        await db.execute(
            insert(UserScope),
            [{"user_id": u, "tenant_id": t, "sub_tenant_id": s} for u, t, s in chunk],
        )


async def export_csv(database: Database) -> str:
    """Every mapping, in the import's format, ordered by e-mail and pair; a cell a
    spreadsheet would take for a formula starts with ``'`` (see the module docstring)."""
    async with database.session() as db:
        rows = (
            await db.execute(
                select(User.email, UserScope.tenant_id, UserScope.sub_tenant_id)
                .join(User, User.id == UserScope.user_id)
                .order_by(User.email, UserScope.tenant_id, UserScope.sub_tenant_id)
            )
        ).all()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([_inert(cell) for cell in row] for row in rows)
    return out.getvalue()


def _inert(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell
