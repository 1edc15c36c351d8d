"""Host inventory: the inventory table, certificates.fingerprint_sha256 (backfilled)

``inventory`` holds what host agents report (one row per certificate an account found on a
host). ``certificates.fingerprint_sha256`` (SHA-256 of the leaf's DER) links a reported
certificate to the one the tenant issued; issuance sets it from now on, and this migration
computes it for the certificates issued before, from their stored chain (in Python: SQL cannot
parse PEM), in keyset batches.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.String(length=32)
BATCH = 500

_certificates = sa.table(
    "certificates",
    sa.column("tenant_id", ID),
    sa.column("id", ID),
    sa.column("chain_pem", sa.Text()),
    sa.column("fingerprint_sha256", sa.String(64)),
)


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint_sha256", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_certificates_tenant_id_fingerprint_sha256"),
            ["tenant_id", "fingerprint_sha256"],
            unique=False,
        )
    _create_inventory()
    _backfill_fingerprints(op.get_bind())


def _create_inventory() -> None:
    op.create_table(
        "inventory",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sans", sa.JSON(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        _ts("not_before"),
        _ts("not_after"),
        sa.Column("key_type", sa.String(length=32), nullable=False),
        sa.Column("key_bits", sa.Integer(), nullable=True),
        sa.Column("signature_algorithm", sa.String(length=64), nullable=True),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("served", sa.Boolean(), nullable=False),
        sa.Column("locations", sa.JSON(), nullable=False),
        sa.Column("certificate_id", ID, nullable=True),
        _ts("first_seen"),
        _ts("last_seen"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["accounts.tenant_id", "accounts.id"],
            name=op.f("fk_inventory_tenant_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "certificate_id"],
            ["certificates.tenant_id", "certificates.id"],
            name=op.f("fk_inventory_tenant_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_inventory")),
        sa.UniqueConstraint(
            "tenant_id",
            "account_id",
            "host",
            "fingerprint",
            name=op.f("uq_inventory_tenant_id_account_id_host_fingerprint"),
        ),
    )
    op.create_index(
        op.f("ix_inventory_tenant_id_first_seen"), "inventory", ["tenant_id", "first_seen"]
    )
    op.create_index(
        op.f("ix_inventory_tenant_id_fingerprint"), "inventory", ["tenant_id", "fingerprint"]
    )


def leaf_fingerprint(chain_pem: str) -> str | None:
    """SHA-256 (hex) of the DER of the first certificate of ``chain_pem``; None if unreadable."""
    try:
        leaf = x509.load_pem_x509_certificate(chain_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()


def _backfill_fingerprints(conn: sa.Connection) -> None:
    """Every stored chain without a fingerprint gets one, BATCH rows at a time."""
    c = _certificates.c
    after: tuple[str, str] = ("", "")
    while True:
        rows = conn.execute(
            sa.select(c.tenant_id, c.id, c.chain_pem)
            .where(c.chain_pem.is_not(None), c.fingerprint_sha256.is_(None))
            .where(sa.tuple_(c.tenant_id, c.id) > sa.tuple_(*after))
            .order_by(c.tenant_id, c.id)
            .limit(BATCH)
        ).all()
        for tenant_id, cert_id, chain_pem in rows:
            fingerprint = leaf_fingerprint(chain_pem)
            if fingerprint is not None:
                conn.execute(
                    sa.update(_certificates)
                    .where(c.tenant_id == tenant_id, c.id == cert_id)
                    .values(fingerprint_sha256=fingerprint)
                )
        if len(rows) < BATCH:
            return
        after = (rows[-1][0], rows[-1][1])


def downgrade() -> None:
    op.drop_index(op.f("ix_inventory_tenant_id_fingerprint"), table_name="inventory")
    op.drop_index(op.f("ix_inventory_tenant_id_first_seen"), table_name="inventory")
    op.drop_table("inventory")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_tenant_id_fingerprint_sha256"))
        batch_op.drop_column("fingerprint_sha256")
