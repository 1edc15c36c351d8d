"""The whole RFC 8555 flow with certbot's acme library, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from acme import challenges, errors
from cptest.acmelib import csr_for, new_client, register
from cryptography import x509


def _answer_http01(acme, order, responder):
    for authz in order.authorizations:
        chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
        response, validation = chall.response_and_validation(acme.net.key)
        responder.tokens[chall.chall.encode("token")] = validation
        acme.answer_challenge(chall, response)


def test_register_order_validate_finalize_download(server, platform, http01):
    acme = new_client(platform.directory("alpha"))
    account = register(acme, platform.eab.pop("alpha"))
    assert str(account.body.status) == "valid"
    csr, _ = csr_for(["www.alpha.localhost", "api.alpha.localhost"])
    order = acme.new_order(csr)
    _answer_http01(acme, order, http01)
    deadline = datetime.now() + timedelta(seconds=60)
    final = acme.poll_and_finalize(order, deadline=deadline)
    chain = x509.load_pem_x509_certificates(final.fullchain_pem.encode())
    leaf = chain[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [
        "api.alpha.localhost",
        "www.alpha.localhost",
    ]
    assert len(chain) == 2
    leaf.verify_directly_issued_by(chain[1])


def test_new_account_without_eab_is_refused_when_required(server, platform):
    acme = new_client(platform.directory("beta"))
    with pytest.raises(errors.Error) as info:
        register(acme, None)
    assert info.value.typ == "urn:ietf:params:acme:error:externalAccountRequired"
