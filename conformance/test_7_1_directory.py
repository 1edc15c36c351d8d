"""RFC 8555 §7.1.1: the directory resource."""

from __future__ import annotations

import pytest
from cptest.conf_acme import raw_client

REQUIRED = ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange")


@pytest.fixture(scope="module")
def directory(target):
    response = raw_client(target).get(target.directory)
    assert response.status_code == 200
    return response


def test_directory_is_json(directory):
    """§7.1.1: "The server MUST provide directory objects at the "directory" URL" — JSON."""
    assert directory.headers["Content-Type"].startswith("application/json")
    assert isinstance(directory.json(), dict)


@pytest.mark.parametrize("field", REQUIRED)
def test_directory_names_each_resource(directory, field):
    """§7.1.1: the directory object lists newNonce, newAccount, newOrder, revokeCert, keyChange."""
    url = directory.json()[field]
    assert url.startswith(("https://", "http://")), url


def test_directory_urls_are_distinct(directory):
    """§7.1: each resource has its own URL (one URL per function)."""
    urls = [directory.json()[f] for f in REQUIRED]
    assert len(set(urls)) == len(urls)


def test_meta_is_an_object(directory):
    """§7.1.1: "meta" (optional, object): metadata relating to the service."""
    meta = directory.json().get("meta", {})
    assert isinstance(meta, dict)
    for field in ("termsOfService", "website"):
        if field in meta:
            assert isinstance(meta[field], str)
    if "caaIdentities" in meta:
        assert all(isinstance(v, str) for v in meta["caaIdentities"])
    if "externalAccountRequired" in meta:
        assert isinstance(meta["externalAccountRequired"], bool)
