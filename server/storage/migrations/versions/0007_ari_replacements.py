"""ARI replacements (RFC 9773 §5): orders.replaces, certificates.replaced_by_order

``orders.replaces`` keeps the CertID a newOrder named, to reflect it in the order object.
``certificates.replaced_by_order`` is the order that claimed the certificate as its
replacement; a newOrder takes it over only from an order that has become invalid.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaces", sa.Text(), nullable=True))
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaced_by_order", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_column("replaced_by_order")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("replaces")
