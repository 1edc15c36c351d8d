"""certbot's ``acme`` library, the reference client library, through RFC 8555 end to end.

Every test runs twice on certplane: against the plain target and against a certplane with its
hostile knobs on (each first attempt at a request answered ``badNonce``, validation and
finalization held ``processing``), where the library must cope as RFC 8555 expects clients
to: retry with the fresh nonce (§6.5) and poll (§7.5.1, §7.4). Other targets run it once.
"""

from __future__ import annotations

import pytest
from acme import errors, messages
from cptest.acmelib import csr_for
from cptest.conf_acme import unique
from cptest.conf_acmelib import library, obtain, register, sans


def met_the_knobs(server, lib) -> None:
    """On the hostile server the client really was refused nonces, and got through."""
    if "hostile" in server.name:
        assert "badNonce" in lib.problems, lib.problems
    else:
        assert "badNonce" not in lib.problems


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_account_lifecycle(server, kind):
    """§7.3 create, §7.3.2 update contacts, §7.3.6 deactivate, with ES256 and RS256 keys."""
    lib = register(server, library(server, kind=kind))
    assert lib.regr is not None and lib.regr.body.status == "valid"
    assert lib.regr.body.contact == ("mailto:ops@example.com",)
    updated = lib.acme.update_registration(
        lib.regr.update(body=lib.regr.body.update(contact=("mailto:new@example.com",)))
    )
    assert updated.body.contact == ("mailto:new@example.com",)
    assert lib.acme.query_registration(updated).body.contact == ("mailto:new@example.com",)
    deactivated = lib.acme.deactivate_registration(updated)
    assert deactivated.body.status == "deactivated"
    met_the_knobs(server, lib)


def test_issue_http01(server):
    """§7.4: newOrder, §8.3 http-01, finalize with a CSR, poll, download the chain."""
    lib = register(server, library(server))
    name = unique("lib")
    issued = obtain(server, lib, [name])
    assert sans(issued.cert) == ([name], [])
    assert issued.cert.public_key() == issued.key.public_key()
    issued.cert.verify_directly_issued_by(issued.chain[1])
    met_the_knobs(server, lib)


def test_issue_dns01_wildcard_and_base(server):
    """§8.4 dns-01 for a wildcard and its base name: two identifiers, one authorization each
    (the wildcard's identifier has no "*." and "wildcard": true, §7.1.4)."""
    lib = register(server, library(server))
    base = unique("libwild")
    issued = obtain(server, lib, [base, f"*.{base}"], ctype="dns-01")
    assert sans(issued.cert) == (sorted([base, f"*.{base}"]), [])
    wildcard = [a.body for a in issued.order.authorizations if a.body.wildcard]
    assert [a.identifier.value for a in wildcard] == [base]
    met_the_knobs(server, lib)


def test_revoke_then_already_revoked(server):
    """§7.6: the issuing account revokes its certificate; a second request answers
    "alreadyRevoked"."""
    lib = register(server, library(server))
    issued = obtain(server, lib, [unique("librev")])
    lib.acme.revoke(issued.cert, 1)
    with pytest.raises(messages.Error) as again:
        lib.acme.revoke(issued.cert, 1)
    assert again.value.code == "alreadyRevoked"
    met_the_knobs(server, lib)


def test_order_for_unauthorized_csr_fails_cleanly(server):
    """§7.4: finalizing with a CSR for other names is refused with a problem document; the
    library raises it rather than hanging."""
    lib = register(server, library(server))
    order = obtain(server, lib, [unique("libcsr")]).order
    other, _ = csr_for([unique("other")])
    with pytest.raises((messages.Error, errors.Error)):
        lib.acme.begin_finalization(order.update(csr_pem=other))
    met_the_knobs(server, lib)
