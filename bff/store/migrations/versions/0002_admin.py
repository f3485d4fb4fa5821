"""admin: set-password tokens, API key handles per user, audit filters indexed

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "set_password_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_set_password_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_set_password_tokens")),
    )
    with op.batch_alter_table("set_password_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_set_password_tokens_user_id"), ["user_id"], unique=False
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_api_keys_handle"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_api_keys_user_id_handle"), ["user_id", "handle"]
        )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))
        batch_op.drop_index(batch_op.f("ix_audit_log_actor"))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_api_keys_user_id_handle"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_api_keys_handle"), ["handle"])
    with op.batch_alter_table("set_password_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_set_password_tokens_user_id"))
    op.drop_table("set_password_tokens")
