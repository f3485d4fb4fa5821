"""hot query indexes: sessions by partner app, mappings and partner-app pairs by pair,
the audit log's filters in id order

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Revoking an app ends its embed sessions; deleting it cascades to them.
    op.create_index("ix_sessions_partner_app_id", "sessions", ["partner_app_id"])
    # The primary keys lead with the user / the app; a pair's mappings and apps (the
    # mappings filter, a pair's deletion and its cascade) need the pair first.
    op.create_index(
        "ix_user_scopes_tenant_id_sub_tenant_id", "user_scopes", ["tenant_id", "sub_tenant_id"]
    )
    op.create_index(
        "ix_partner_app_scopes_tenant_id_sub_tenant_id",
        "partner_app_scopes",
        ["tenant_id", "sub_tenant_id"],
    )
    # The audit list filters by actor or action and pages newest first: with the id in
    # the index a page is read in order, not sorted out of every matching entry.
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_action", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])
    op.drop_index("ix_audit_log_action_id", table_name="audit_log")
    op.drop_index("ix_audit_log_actor_id", table_name="audit_log")
    op.drop_index("ix_partner_app_scopes_tenant_id_sub_tenant_id", table_name="partner_app_scopes")
    op.drop_index("ix_user_scopes_tenant_id_sub_tenant_id", table_name="user_scopes")
    op.drop_index("ix_sessions_partner_app_id", table_name="sessions")
