"""proxy handoff: embed_tickets also holds the single-use tickets that hand a bff
session over to BFF_PROXY_ORIGIN, which belong to no partner app

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("embed_tickets", schema=None) as batch_op:
        batch_op.alter_column("partner_app_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # Handoff tickets live 60 s; those still unused simply stop working.
    op.execute(sa.text("DELETE FROM embed_tickets WHERE partner_app_id IS NULL"))
    with op.batch_alter_table("embed_tickets", schema=None) as batch_op:
        batch_op.alter_column("partner_app_id", existing_type=sa.Integer(), nullable=False)
