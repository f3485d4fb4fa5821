"""partner embedding: partner users (by the app's own id), single-use launch tickets,
the origin an embedded session's frame talks to

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("partner_app_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("external_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("display_name", sa.String(length=200), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_users_partner_app_id_partner_apps"),
            "partner_apps",
            ["partner_app_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_users_partner_app_id_external_id"), ["partner_app_id", "external_id"]
        )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embed_origin", sa.String(length=300), nullable=True))
    op.create_table(
        "embed_tickets",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("partner_app_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("sub_tenant_id", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_app_id"],
            ["partner_apps.id"],
            name=op.f("fk_embed_tickets_partner_app_id_partner_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_embed_tickets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "sub_tenant_id"],
            ["sub_tenants.tenant_id", "sub_tenants.id"],
            name=op.f("fk_embed_tickets_tenant_id_sub_tenant_id_sub_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_embed_tickets")),
    )
    with op.batch_alter_table("embed_tickets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embed_tickets_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("embed_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embed_tickets_expires_at"))
    op.drop_table("embed_tickets")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("embed_origin")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_partner_app_id_external_id"), type_="unique")
        batch_op.drop_constraint(
            batch_op.f("fk_users_partner_app_id_partner_apps"), type_="foreignkey"
        )
        batch_op.drop_column("display_name")
        batch_op.drop_column("external_id")
        batch_op.drop_column("partner_app_id")
