"""Vendor connections stored in the database, with their secrets encrypted at rest."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bff import identifiers
from bff.crypto import SecretBox, row_context
from bff.store.models import VendorConnection

_SECRET_COLUMNS = ("api_key_encrypted", "api_secret_encrypted")


def _context(connection_id: str, column: str) -> str:
    return row_context(VendorConnection.__tablename__, connection_id, column)


async def save_connection(
    session: AsyncSession,
    box: SecretBox,
    connection_id: str,
    *,
    kind: str,
    base_url: str,
    api_key: str | None,
    api_secret: str | None,
    options: dict[str, Any] | None = None,
) -> VendorConnection:
    """Create or replace a connection; secrets are written only as bound ciphertexts."""
    connection_id = identifiers.tenant_id(connection_id, "connection id")
    row = await session.get(VendorConnection, connection_id)
    if row is None:
        row = VendorConnection(id=connection_id)
        session.add(row)
    row.kind = kind
    row.base_url = base_url
    row.options = json.dumps(options or {})
    row.api_key_encrypted = _seal(box, connection_id, "api_key_encrypted", api_key)
    row.api_secret_encrypted = _seal(box, connection_id, "api_secret_encrypted", api_secret)
    await session.flush()
    return row


def connection_secrets(box: SecretBox, row: VendorConnection) -> tuple[str | None, str | None]:
    """The decrypted (api_key, api_secret); raises SecretDecryptionError when they don't fit."""
    return (
        _open(box, row.id, "api_key_encrypted", row.api_key_encrypted),
        _open(box, row.id, "api_secret_encrypted", row.api_secret_encrypted),
    )


async def reencrypt_connections(session: AsyncSession, box: SecretBox) -> int:
    """Rotate every stored secret to the newest key; all rows or none (one transaction)."""
    rotated = 0
    for row in await session.scalars(select(VendorConnection)):
        for column in _SECRET_COLUMNS:
            ciphertext = getattr(row, column)
            if ciphertext is not None:
                setattr(row, column, box.rotate(ciphertext, _context(row.id, column)))
                rotated += 1
    await session.flush()
    return rotated


def _seal(box: SecretBox, connection_id: str, column: str, value: str | None) -> str | None:
    return None if value is None else box.encrypt(value, _context(connection_id, column))


def _open(box: SecretBox, connection_id: str, column: str, value: str | None) -> str | None:
    return None if value is None else box.decrypt(value, _context(connection_id, column))
