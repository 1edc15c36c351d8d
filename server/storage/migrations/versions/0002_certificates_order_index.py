"""index certificates by (tenant_id, order_id)

Every issuance attempt abandons the reservations a crashed attempt left for its order; without
this index that update scans all of the tenant's certificates.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificates_tenant_id_order_id"),
            ["tenant_id", "order_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_tenant_id_order_id"))
