"""The SQLite fast path returns exactly what SQLAlchemy returns, for every statement shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, create_engine, delete, insert, select, update

from certplane.server.storage import tables as t
from certplane.server.storage.sqlite_fast import FastExecutor
from certplane.server.storage.sqlite_inline import InlineSQLiteDialect

NOW = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
_a = t.authorizations


@pytest.fixture
def conn(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'fast.db'}")
    t.metadata.create_all(engine)
    with engine.connect() as connection:
        connection.execute(
            insert(t.tenants),
            {
                "id": "t1",
                "slug": "t1",
                "display_name": "T",
                "status": "active",
                "external_account_required": True,
                "created_at": NOW,
            },
        )
        connection.execute(
            insert(t.accounts),
            {
                "tenant_id": "t1",
                "id": "a1",
                "jwk_thumbprint": "tp",
                "jwk": {"kty": "EC"},
                "status": "valid",
                "contact": ["mailto:x@example.com"],
                "terms_agreed": True,
                "eab_kid": None,
                "created_at": NOW,
            },
        )
        yield connection


def _rows(i: int) -> dict:
    return {
        "tenant_id": "t1",
        "id": f"z{i}",
        "account_id": "a1",
        "identifier_type": "dns",
        "identifier_value": f"n{i}.example.com",
        "wildcard": i % 2 == 0,
        "status": ("pending", "valid", "invalid")[i % 3],
        "expires": NOW + timedelta(days=i),
        "created_at": NOW,
    }


def _both(conn, fast, stmt, params):
    mine = fast.execute(conn, stmt, params)
    theirs = conn.execute(stmt, params)
    return mine, theirs


def test_insert_many_then_select_with_literal_in_limit_and_types(conn):
    fast = FastExecutor(InlineSQLiteDialect())
    fast.execute(conn, insert(_a), [_rows(i) for i in range(6)])
    stmt = (
        select(_a)
        .where(_a.c.tenant_id == bindparam("tid"), _a.c.status.in_(["valid", "pending"]))
        .where(_a.c.expires > bindparam("now"))
        .order_by(_a.c.id)
        .limit(3)
    )
    mine, theirs = _both(conn, fast, stmt, {"tid": "t1", "now": NOW})
    expected = [dict(row) for row in theirs.mappings().all()]
    assert mine.mappings().all() == expected
    assert len(expected) == 3
    assert expected[0]["expires"].tzinfo is UTC and isinstance(expected[0]["wildcard"], bool)


def test_expanding_parameters_and_update_rowcount(conn):
    fast = FastExecutor(InlineSQLiteDialect())
    fast.execute(conn, insert(_a), [_rows(i) for i in range(6)])
    move = update(_a).where(
        _a.c.tenant_id == bindparam("tid"), _a.c.status.in_(bindparam("w_from", expanding=True))
    )
    result = fast.execute(
        conn, move, {"tid": "t1", "w_from": ["pending", "invalid"], "status": "expired"}
    )
    assert result.rowcount == 4
    again = fast.execute(conn, move, {"tid": "t1", "w_from": ["valid"], "status": "expired"})
    assert again.rowcount == 2
    count = conn.execute(select(_a).where(_a.c.status == "expired")).all()
    assert len(count) == 6


def test_json_and_null_round_trip_and_delete(conn):
    fast = FastExecutor(InlineSQLiteDialect())
    stmt = select(t.accounts).where(t.accounts.c.id == bindparam("w_id"))
    mine, theirs = _both(conn, fast, stmt, {"w_id": "a1"})
    row = mine.mappings().first()
    assert row == dict(theirs.mappings().first())
    assert row["jwk"] == {"kty": "EC"} and row["eab_kid"] is None
    assert fast.execute(conn, stmt, {"w_id": "nope"}).mappings().first() is None
    gone = fast.execute(
        conn, delete(t.accounts).where(t.accounts.c.id == bindparam("w_id")), {"w_id": "a1"}
    )
    assert gone.rowcount == 1


def test_listeners_see_every_statement(conn):
    from sqlalchemy import event

    seen = []
    event.listen(conn.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    fast = FastExecutor(InlineSQLiteDialect())
    fast.execute(conn, select(t.tenants).where(t.tenants.c.id == bindparam("w_id")), {"w_id": "t1"})
    assert seen and "FROM tenants" in seen[-1]


def test_a_null_written_into_the_statement(conn):
    """``.values(column=None)`` sets NULL (it once raised KeyError on the fast path)."""
    fast = FastExecutor(InlineSQLiteDialect())
    fast.execute(conn, insert(_a), [_rows(1)])
    stmt = update(_a).where(_a.c.id == bindparam("w_id")).values(status="x", expires=None)
    with pytest.raises(Exception, match="NOT NULL"):  # expires is NOT NULL: the NULL was sent
        fast.execute(conn, stmt, {"w_id": "z1"})
    tenants = update(t.tenants).where(t.tenants.c.id == bindparam("w_id"))
    nulled = tenants.values(webhook_secret_sealed=None, webhook_url="")
    assert fast.execute(conn, nulled, {"w_id": "t1"}).rowcount == 1
    row = conn.execute(select(t.tenants.c.webhook_secret_sealed)).first()
    assert row is not None and row[0] is None
