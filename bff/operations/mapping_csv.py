"""Mappings as CSV: ``email,tenant_id,sub_tenant_id`` with a header row.

An import is checked completely before anything is written: every problem is
reported with its line number (the header is line 1) and then nothing is applied.
A large file is parsed and planned in a worker process (see
:mod:`bff.operations.mapping_plan`), so its row objects neither hold the GIL nor
wake the garbage collector in the server: the database's state goes there as three
JSON texts and the plan comes back as a few more. The apply is one transaction, all
or nothing, of a few statements that read those texts as they are, so SQLite's
write lock is held for well under a second. A change that lands between the plan
and the apply breaks a constraint (the same mapping added, its user or pair
deleted), and the import is refused whole.

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
import json
import logging

import anyio.to_process
import anyio.to_thread
from anyio import BrokenWorkerProcess
from sqlalchemy import (
    Delete,
    Insert,
    Integer,
    String,
    Subquery,
    bindparam,
    delete,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bff.operations import audit, mapping_plan
from bff.operations.live import Live, mappings_removed
from bff.operations.mapping_plan import HEADER, LineError, Mode, Plan, Removal, Snapshot
from bff.store.database import Database, conflict_means_exists
from bff.store.models import User, UserScope, UTCDateTime, utcnow

__all__ = ["HEADER", "ImportReport", "LineError", "Mode", "Removal", "export_csv", "import_csv"]

logger = logging.getLogger(__name__)

# Rows per insert or delete statement.
CHUNK = 10_000
# Below this many bytes of file and state, a thread costs less than a worker process.
IN_THREAD_BELOW = 64 * 1024
CHANGED = "the mappings changed while the import ran; nothing was applied, try again"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Users, pairs and mappings as the plan's JSON texts, read by one statement (one
# snapshot), per dialect.
_SNAPSHOT = {
    "sqlite": text(
        "SELECT"
        " (SELECT json_group_array(json_array(id, email)) FROM users),"
        " (SELECT json_group_array(json_array(tenant_id, id)) FROM sub_tenants),"
        " (SELECT json_group_array(json_array(user_id, tenant_id, sub_tenant_id))"
        " FROM user_scopes)"
    ),
    "postgresql": text(
        "SELECT"
        " (SELECT CAST(coalesce(json_agg(json_build_array(id, email)), '[]') AS text)"
        " FROM users),"
        " (SELECT CAST(coalesce(json_agg(json_build_array(tenant_id, id)), '[]') AS text)"
        " FROM sub_tenants),"
        " (SELECT CAST(coalesce(json_agg(json_build_array(user_id, tenant_id, sub_tenant_id)),"
        " '[]') AS text) FROM user_scopes)"
    ),
}
# One of the plan's JSON texts as rows (user_id, tenant_id, sub_tenant_id), per dialect.
_CHUNK_ROWS = {
    "sqlite": "SELECT json_extract(value, '$[0]') AS user_id,"
    " json_extract(value, '$[1]') AS tenant_id, json_extract(value, '$[2]') AS sub_tenant_id"
    " FROM json_each(:rows)",
    "postgresql": "SELECT CAST(value ->> 0 AS integer) AS user_id,"
    " value ->> 1 AS tenant_id, value ->> 2 AS sub_tenant_id"
    " FROM jsonb_array_elements(CAST(:rows AS jsonb))",
}
_KEY = ("user_id", "tenant_id", "sub_tenant_id")
_TABLE = UserScope.metadata.tables[UserScope.__tablename__]


def _chunk(dialect: str) -> Subquery:
    return (
        text(_CHUNK_ROWS[dialect])
        .columns(user_id=Integer, tenant_id=String, sub_tenant_id=String)
        .subquery("chunk")
    )


def _insert(dialect: str) -> Insert:
    chunk = _chunk(dialect)
    created_at = bindparam("created_at", type_=UTCDateTime())
    return insert(_TABLE).from_select([*_KEY, "created_at"], select(*chunk.c, created_at))


def _delete(dialect: str) -> Delete:
    key = tuple_(*(_TABLE.c[name] for name in _KEY))
    return delete(_TABLE).where(key.in_(select(*_chunk(dialect).c)))


_INSERT = {dialect: _insert(dialect) for dialect in _CHUNK_ROWS}
_DELETE = {dialect: _delete(dialect) for dialect in _CHUNK_ROWS}


@dataclasses.dataclass(frozen=True)
class ImportReport:
    added: int
    removed: int
    unchanged: int
    # Sorted by line, at most mapping_plan.MAX_ERRORS.
    errors: list[LineError]
    # What ``replace`` takes away, for the preview: at most mapping_plan.MAX_REMOVALS
    # (``removed`` counts them all).
    removals: list[Removal]
    applied: bool


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
    snapshot = await _read_snapshot(database)
    plan = await _make_plan(data, snapshot, mode)
    apply = not plan.errors and not dry_run
    if apply:
        with conflict_means_exists(CHANGED):
            async with database.session() as db:
                await _apply(db, plan)
                await audit.record(
                    db,
                    actor,
                    "mapping.import",
                    mode,
                    {"added": plan.added, "removed": plan.removed, "unchanged": plan.unchanged},
                )
        if live is not None and plan.removes:
            await mappings_removed(live, _mappings(plan.removes))
    return ImportReport(
        added=plan.added,
        removed=plan.removed,
        unchanged=plan.unchanged,
        errors=plan.errors,
        removals=plan.removals,
        applied=apply,
    )


async def _read_snapshot(database: Database) -> Snapshot:
    async with database.session() as db:
        statement = _SNAPSHOT[db.get_bind().dialect.name]
        users, pairs, mappings = (await db.execute(statement)).one()
    return Snapshot(users, pairs, mappings)


async def _make_plan(data: bytes, snapshot: Snapshot, mode: Mode) -> Plan:
    if len(data) + snapshot.size >= IN_THREAD_BELOW:
        try:
            return await anyio.to_process.run_sync(
                mapping_plan.plan_in_worker, data, snapshot, mode, CHUNK
            )
        except BrokenWorkerProcess:
            logger.warning("no worker process for the import; planning in a thread", exc_info=True)
    return await anyio.to_thread.run_sync(mapping_plan.plan, data, snapshot, mode, CHUNK)


async def _apply(db: AsyncSession, plan: Plan) -> None:
    dialect = db.get_bind().dialect.name
    for rows in plan.removes:
        await db.execute(_DELETE[dialect], {"rows": rows})
    created_at = utcnow()
    for rows in plan.adds:
        await db.execute(_INSERT[dialect], {"rows": rows, "created_at": created_at})


def _mappings(chunks: list[str]) -> list[tuple[int, str, str]]:
    return [(u, t, s) for rows in chunks for u, t, s in json.loads(rows)]


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
