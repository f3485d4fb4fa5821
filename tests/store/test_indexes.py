"""Every hot query is served by an index, on PostgreSQL with a populated database.

The planner is left to choose (no ``enable_seqscan = off``): the tables hold enough
rows, analysed, that a missing index shows as a sequential scan. Each statement is
the one its module runs, written out here with the same shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from bff.store.database import Database
from bff.store.migrate import upgrade

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

USERS = 20_000
APPS = 50

_POPULATE = [
    f"""INSERT INTO partner_apps (id, name, allowed_origins, disabled, created_at)
        SELECT n, 'app ' || n, '[]', false, now() FROM generate_series(1, {APPS}) n""",
    f"""INSERT INTO users (id, email, is_admin, disabled, created_at, partner_app_id, external_id)
        SELECT n, 'user' || n || '@example.com', false, false, now(),
               CASE WHEN n % 4 = 0 THEN n % {APPS} + 1 END,
               CASE WHEN n % 4 = 0 THEN 'ext' || n END
        FROM generate_series(1, {USERS}) n""",
    """INSERT INTO tenants (id, name, created_at)
       SELECT 't' || n, '', now() FROM generate_series(1, 200) n""",
    """INSERT INTO sub_tenants (tenant_id, id, name, created_at)
       SELECT 't' || t, 's' || s, '', now()
       FROM generate_series(1, 200) t, generate_series(1, 10) s""",
    f"""INSERT INTO user_scopes (user_id, tenant_id, sub_tenant_id, created_at)
        SELECT n, 't' || (n % 200 + 1), 's' || s, now()
        FROM generate_series(1, {USERS}) n, generate_series(1, 3) s""",
    f"""INSERT INTO partner_app_scopes (partner_app_id, tenant_id, sub_tenant_id)
        SELECT a, 't' || t, 's1' FROM generate_series(1, {APPS}) a, generate_series(1, 100) t""",
    f"""INSERT INTO sessions (id_hash, user_id, tenant_id, sub_tenant_id, csrf_secret, embedded,
                              partner_app_id, created_at, last_seen_at)
        SELECT md5('s' || n) || md5('t' || n), n, 't' || (n % 200 + 1), 's1', md5('c' || n),
               n % 4 = 0, CASE WHEN n % 4 = 0 THEN n % {APPS} + 1 END, now(), now()
        FROM generate_series(1, {USERS}) n""",
    f"""INSERT INTO api_keys (id, user_id, handle, key_hash, created_at)
        SELECT n, n, 'k', md5('k' || n) || md5('l' || n), now()
        FROM generate_series(1, {USERS}) n""",
    f"""INSERT INTO partner_credentials (id, partner_app_id, client_id, secret_hash, created_at)
        SELECT n, n % {APPS} + 1, 'bffp_' || md5('p' || n), md5('q' || n), now()
        FROM generate_series(1, 2000) n""",
    f"""INSERT INTO embed_tickets (token_hash, partner_app_id, user_id, tenant_id, sub_tenant_id,
                                   origin, expires_at, created_at)
        SELECT md5('e' || n) || md5('f' || n), n % {APPS} + 1, n, 't' || (n % 200 + 1), 's1',
               'https://p.example', now() + interval '1 minute' * (n % 60), now()
        FROM generate_series(1, {USERS}) n""",
    f"""INSERT INTO set_password_tokens (token_hash, user_id, expires_at, created_at)
        SELECT md5('w' || n) || md5('x' || n), n, now() + interval '1 day', now()
        FROM generate_series(1, {USERS}) n""",
    """INSERT INTO audit_log (id, at, actor, action, target, detail)
       SELECT n, now(),
              CASE WHEN n % 10000 = 0 THEN 'cli' ELSE 'user' || (n % 500) || '@example.com' END,
              CASE WHEN n % 10000 = 5 THEN 'user.delete' ELSE 'action.' || (n % 40) END,
              '', '{}'
       FROM generate_series(1, 100000) n""",
    "ANALYZE",
]

# (what, statement, parameters, the index that must serve it). The audit filters look
# for a rare actor and action: for a common one, walking the newest entries by id
# (the primary key) is the better plan, and the planner rightly takes it.
HOT_QUERIES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "session by its hash (every signed-in request, cache miss)",
        "SELECT user_id, tenant_id, sub_tenant_id, csrf_secret, embedded, partner_app_id, "
        "embed_origin, created_at, last_seen_at FROM sessions WHERE id_hash = :h",
        {"h": "0" * 64},
        "pk_sessions",
    ),
    (
        "session touched",
        "UPDATE sessions SET last_seen_at = now() WHERE id_hash = :h",
        {"h": "0" * 64},
        "pk_sessions",
    ),
    (
        "a user's sessions revoked (sign-out everywhere, disable, mapping removed)",
        "DELETE FROM sessions WHERE user_id = :u RETURNING id_hash",
        {"u": 42},
        "ix_sessions_user_id",
    ),
    (
        "a partner app's embed sessions revoked",
        "DELETE FROM sessions WHERE partner_app_id = :a RETURNING id_hash",
        {"a": 7},
        "ix_sessions_partner_app_id",
    ),
    (
        "a user's mappings (the dashboard's pair check, cache miss)",
        "SELECT tenant_id, sub_tenant_id FROM user_scopes WHERE user_id = :u "
        "ORDER BY tenant_id, sub_tenant_id",
        {"u": 42},
        "pk_user_scopes",
    ),
    (
        "a pair's mappings (mappings filter, pair deletion)",
        "SELECT user_id FROM user_scopes WHERE tenant_id = :t AND sub_tenant_id = :s",
        {"t": "t7", "s": "s1"},
        "ix_user_scopes_tenant_id_sub_tenant_id",
    ),
    (
        "a pair's partner apps (pair deletion)",
        "SELECT partner_app_id FROM partner_app_scopes WHERE tenant_id = :t AND sub_tenant_id = :s",
        {"t": "t7", "s": "s1"},
        "ix_partner_app_scopes_tenant_id_sub_tenant_id",
    ),
    (
        "a local user by e-mail (sign-in)",
        "SELECT id FROM users WHERE email = :e AND partner_app_id IS NULL",
        {"e": "user42@example.com"},
        "uq_users_email",
    ),
    (
        "a partner app's user by its own id (launch)",
        "SELECT id FROM users WHERE partner_app_id = :a AND external_id = :x",
        {"a": 7, "x": "ext56"},
        "uq_users_partner_app_id_external_id",
    ),
    (
        "the users page (first page, in e-mail order)",
        "SELECT id, email FROM users WHERE partner_app_id IS NULL ORDER BY email LIMIT 51 OFFSET 0",
        {},
        "uq_users_email",
    ),
    (
        "a personal API key by its hash (every API request)",
        "SELECT api_keys.id, users.id, users.email, users.is_admin, users.disabled "
        "FROM api_keys JOIN users ON users.id = api_keys.user_id WHERE api_keys.key_hash = :h",
        {"h": "0" * 64},
        "uq_api_keys_key_hash",
    ),
    (
        "a user's API keys",
        "SELECT id, handle FROM api_keys WHERE user_id = :u ORDER BY handle",
        {"u": 42},
        "uq_api_keys_user_id_handle",
    ),
    (
        "a partner credential by client id (token endpoint)",
        "SELECT secret_hash, revoked_at FROM partner_credentials WHERE client_id = :c",
        {"c": "bffp_x"},
        "uq_partner_credentials_client_id",
    ),
    (
        "a launch ticket redeemed",
        "DELETE FROM embed_tickets WHERE token_hash = :h AND partner_app_id IS NOT NULL "
        "RETURNING partner_app_id, user_id, tenant_id, sub_tenant_id, origin, expires_at",
        {"h": "0" * 64},
        "pk_embed_tickets",
    ),
    (
        "expired tickets swept",
        "DELETE FROM embed_tickets WHERE expires_at <= now() - interval '1 hour'",
        {},
        "ix_embed_tickets_expires_at",
    ),
    (
        "a set-password link used",
        "DELETE FROM set_password_tokens WHERE token_hash = :h",
        {"h": "0" * 64},
        "pk_set_password_tokens",
    ),
    (
        "the audit log, newest first",
        "SELECT at, actor, action, target FROM audit_log ORDER BY id DESC LIMIT 51 OFFSET 0",
        {},
        "pk_audit_log",
    ),
    (
        "the audit log of one actor, newest first",
        "SELECT at, actor, action, target FROM audit_log WHERE actor = :a "
        "ORDER BY id DESC LIMIT 51 OFFSET 0",
        {"a": "cli"},
        "ix_audit_log_actor_id",
    ),
    (
        "the audit log of one action, newest first",
        "SELECT at, actor, action, target FROM audit_log WHERE action = :a "
        "ORDER BY id DESC LIMIT 51 OFFSET 0",
        {"a": "user.delete"},
        "ix_audit_log_action_id",
    ),
]


@pytest.fixture
async def populated(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    try:
        await upgrade(database.engine)
        async with database.engine.begin() as connection:
            for statement in _POPULATE:
                await connection.execute(text(statement))
        yield database
    finally:
        await database.dispose()


def _scans(plan: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """Every scan node of a JSON plan: (node type, relation, index)."""
    found = []
    if "Scan" in plan["Node Type"]:
        found.append((plan["Node Type"], plan.get("Relation Name"), plan.get("Index Name")))
    for child in plan.get("Plans", ()):
        found += _scans(child)
    return found


async def test_every_hot_query_uses_its_index(populated: Database) -> None:
    missing = []
    async with populated.engine.connect() as connection:
        for what, statement, parameters, index in HOT_QUERIES:
            result = await connection.execute(
                text(f"EXPLAIN (FORMAT JSON) {statement}"), parameters
            )
            raw = result.scalar_one()
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            scans = _scans(plan)
            if index not in {name for _type, _relation, name in scans} or any(
                kind == "Seq Scan" for kind, _relation, _name in scans
            ):
                missing.append(f"{what}: {scans}")
        await connection.rollback()
    assert missing == [], "\n".join(missing)
