"""The audit log: who did what to which target, and when. Never a secret."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bff.store.database import Database
from bff.store.models import AuditEntry

PAGE_SIZE = 50
_MAX_TARGET = 500


async def record(
    db: AsyncSession,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, object] | None = None,
) -> None:
    """Add an entry to the caller's transaction, so it commits with the change it describes."""
    db.add(
        AuditEntry(
            actor=actor,
            action=action,
            target=target[:_MAX_TARGET],
            detail=json.dumps(detail or {}, sort_keys=True),
        )
    )
    await db.flush()


@dataclasses.dataclass(frozen=True)
class Entry:
    at: datetime
    actor: str
    action: str
    target: str


@dataclasses.dataclass(frozen=True)
class EntryPage:
    items: list[Entry]
    next_page: int | None


async def list_entries(
    database: Database,
    *,
    actor: str | None = None,
    action: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> EntryPage:
    """Newest first; ``actor`` and ``action`` match exactly (both are indexed)."""
    page = max(1, page)
    query = select(AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.target)
    if actor:
        query = query.where(AuditEntry.actor == actor.strip().lower())
    if action:
        query = query.where(AuditEntry.action == action.strip())
    query = query.order_by(AuditEntry.id.desc()).offset((page - 1) * page_size).limit(page_size + 1)
    async with database.session() as db:
        rows = (await db.execute(query)).all()
    items = [Entry(at, who, what, target) for at, who, what, target in rows[:page_size]]
    return EntryPage(items, page + 1 if len(rows) > page_size else None)
