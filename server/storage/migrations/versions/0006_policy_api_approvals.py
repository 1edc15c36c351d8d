"""policies, approvals, webhooks, API tokens, idempotency keys; tenant tier and policy version

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.String(length=32)


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants")
    )


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tier", sa.String(32), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("policy_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("webhook_url", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("webhook_secret_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("eab_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("created_by", sa.String(128), nullable=False, server_default="")
        )
    op.create_index(op.f("ix_orders_tenant_id_status"), "orders", ["tenant_id", "status"])
    op.create_table(
        "policies",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_by", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("activated_at", nullable=True),
        _tenant_fk("policies"),
        sa.PrimaryKeyConstraint("tenant_id", "version", name=op.f("pk_policies")),
    )
    op.create_table(
        "approvals",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("deadline"),
        _ts("decided_at", nullable=True),
        _tenant_fk("approvals"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_approvals")),
    )
    op.create_index(
        op.f("ix_approvals_tenant_id_status_created_at"),
        "approvals",
        ["tenant_id", "status", "created_at"],
    )
    op.create_index(
        op.f("ix_approvals_tenant_id_kind_object_id"),
        "approvals",
        ["tenant_id", "kind", "object_id"],
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("delivered_at", nullable=True),
        _tenant_fk("webhook_deliveries"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=True),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("revoked_at", nullable=True),
        _ts("last_used_at", nullable=True),
        _ts("calls_tat", nullable=True),
        _tenant_fk("api_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    op.create_index(
        op.f("ix_api_tokens_tenant_id_created_at"), "api_tokens", ["tenant_id", "created_at"]
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("token_id", ID, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("token_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("api_tokens")
    op.drop_table("webhook_deliveries")
    op.drop_table("approvals")
    op.drop_table("policies")
    op.drop_index(op.f("ix_orders_tenant_id_status"), table_name="orders")
    with op.batch_alter_table("eab_keys", schema=None) as batch_op:
        batch_op.drop_column("created_by")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("webhook_secret_sealed")
        batch_op.drop_column("webhook_url")
        batch_op.drop_column("policy_version")
        batch_op.drop_column("tier")
