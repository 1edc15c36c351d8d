"""Resource ids: random, URL-safe, and safe to type as a command-line argument."""

from __future__ import annotations

import re

from certplane.server.storage.scope import new_id

BASE64URL_128 = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{20}[AQgw]")


def test_ids_are_128_bit_base64url_and_never_look_like_an_option() -> None:
    ids = [new_id() for _ in range(5000)]
    assert all(BASE64URL_128.fullmatch(i) for i in ids), [
        i for i in ids if not BASE64URL_128.fullmatch(i)
    ][:3]
    assert len(set(ids)) == len(ids)
    assert not any(i.startswith("-") for i in ids)
