"""The database schema. Migrations in ``bff/store/migrations`` create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 64


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    """A local user, or (``partner_app_id`` set) a partner app's user, known only by the
    app's own id for them: such a user has no password and an address no one can own
    (``….invalid``), so they can never sign in at ``/login``."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("partner_app_id", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    partner_app_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_apps.id", ondelete="CASCADE")
    )
    external_id: Mapped[str | None] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubTenant(Base):
    __tablename__ = "sub_tenants"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserScope(Base):
    """A mapping: this user may see this (tenant, sub-tenant)."""

    __tablename__ = "user_scopes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "sub_tenant_id"],
            ["sub_tenants.tenant_id", "sub_tenants.id"],
            ondelete="CASCADE",
        ),
        # The key leads with the user; a pair's mappings need the pair first.
        Index("ix_user_scopes_tenant_id_sub_tenant_id", "tenant_id", "sub_tenant_id"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    sub_tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SessionRecord(Base):
    """A signed-in session. Only a hash of the session id is stored."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id", "user_id"),
        Index("ix_sessions_partner_app_id", "partner_app_id"),
    )

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tenant_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    sub_tenant_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    csrf_secret: Mapped[str] = mapped_column(String(64))
    embedded: Mapped[bool] = mapped_column(Boolean, default=False)
    partner_app_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_apps.id", ondelete="CASCADE")
    )
    # An embedded session's partner page origin: its frame talks to exactly that origin.
    embed_origin: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VendorConnection(Base):
    """A vendor connection. Secrets are ciphertexts bound to this row (see bff.crypto)."""

    __tablename__ = "vendor_connections"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    base_url: Mapped[str] = mapped_column(String(2000))
    options: Mapped[str] = mapped_column(Text, default="{}")
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PartnerApp(Base):
    __tablename__ = "partner_apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    allowed_origins: Mapped[str] = mapped_column(Text, default="[]")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PartnerAppScope(Base):
    """A (tenant, sub-tenant) a partner app may open embed sessions for."""

    __tablename__ = "partner_app_scopes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "sub_tenant_id"],
            ["sub_tenants.tenant_id", "sub_tenants.id"],
            ondelete="CASCADE",
        ),
        Index("ix_partner_app_scopes_tenant_id_sub_tenant_id", "tenant_id", "sub_tenant_id"),
    )

    partner_app_id: Mapped[int] = mapped_column(
        ForeignKey("partner_apps.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    sub_tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)


class PartnerCredential(Base):
    __tablename__ = "partner_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_app_id: Mapped[int] = mapped_column(
        ForeignKey("partner_apps.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A personal admin API key; only its hash is stored. Handles are per user."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("user_id", "handle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    handle: Mapped[str] = mapped_column(String(64))
    alias: Mapped[str | None] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    # The list filters by actor or action and pages newest first (by id).
    __table_args__ = (
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")


class SetPasswordToken(Base):
    """A one-time set-password link; only a hash of its token is stored."""

    __tablename__ = "set_password_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmbedTicket(Base):
    """A single-use ticket (hash only), redeemed by deleting it: a partner's embed launch
    (``partner_app_id`` set), or a proxy handoff from a bff page to ``BFF_PROXY_ORIGIN``
    (no app; see :mod:`bff.web.dashboard.handoff`)."""

    __tablename__ = "embed_tickets"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "sub_tenant_id"],
            ["sub_tenants.tenant_id", "sub_tenants.id"],
            ondelete="CASCADE",
        ),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_app_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_apps.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    sub_tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    # The partner page's origin: embed pages post their messages to exactly it (for a
    # handoff, the origin of the page whose frame redeems it).
    origin: Mapped[str] = mapped_column(String(300))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
