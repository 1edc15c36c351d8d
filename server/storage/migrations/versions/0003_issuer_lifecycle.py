"""issuers: hierarchy pattern, tenant trust anchor, pending CSR, retirement; tenants: AIA

A tenant may hold several issuers (an ECDSA and an RSA one, the old one after a rotation): each
records which hierarchy it belongs to, the root of a dedicated or customer hierarchy, the CSR of a
customer-owned CA waiting for its certificate, when it stopped issuing, and the alternative chains
(a cross-signed intermediate) certificate downloads offer, and its delegated OCSP responder. A
tenant chooses what its leaves carry in Authority Information Access.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issuers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "pattern", sa.String(length=16), nullable=False, server_default="platform-root"
            )
        )
        batch_op.add_column(sa.Column("root_pem", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("csr_pem", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("alternate_chains", sa.Text(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("ocsp_responder_pem", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ocsp_key_ref", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("crl_number", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("aia_ocsp", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column("aia_ca_issuers", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("aia_ca_issuers")
        batch_op.drop_column("aia_ocsp")
    with op.batch_alter_table("issuers", schema=None) as batch_op:
        batch_op.drop_column("crl_number")
        batch_op.drop_column("ocsp_key_ref")
        batch_op.drop_column("ocsp_responder_pem")
        batch_op.drop_column("alternate_chains")
        batch_op.drop_column("retired_at")
        batch_op.drop_column("csr_pem")
        batch_op.drop_column("root_pem")
        batch_op.drop_column("pattern")
