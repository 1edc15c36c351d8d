"""certbot's ``acme`` library against a conformance target: the suite's happy paths.

Every response it receives passes the baseline hook of :mod:`cptest.conf_acme`; the ACME
problem types the server answered are recorded, so a run with hostile knobs on can show that
the client met them (``badNonce``) and still succeeded.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import josepy as jose
import pytest
import requests
from acme import client as acme_client
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from cptest.acmelib import account_key, csr_for
from cptest.conf_acme import PROBLEM, baseline_hook, publish
from cptest.conf_target import Target

DEADLINE_SECONDS = 90


@dataclass
class Library:
    """An ``acme.client.ClientV2`` bound to one directory, with its account key."""

    acme: acme_client.ClientV2
    key: jose.JWK
    problems: list[str] = field(default_factory=list)
    regr: messages.RegistrationResource | None = None


def library(target: Target, directory: str | None = None, kind: str = "ec") -> Library:
    """A client for ``directory`` (the target's first tenant by default); no account yet."""
    directory = directory or target.directory
    key = account_key(kind)
    alg = jose.RS256 if kind == "rsa" else jose.ES256
    net = acme_client.ClientNetwork(
        key, alg=alg, verify_ssl=target.verify, user_agent="certplane-conformance"
    )
    problems: list[str] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.headers.get("Content-Type", "").startswith(PROBLEM):
            problems.append(response.json().get("type", "").rsplit(":", 1)[-1])

    net.session.hooks["response"] += [baseline_hook(directory), record]
    acme = acme_client.ClientV2(messages.Directory.from_json(net.get(directory).json()), net)
    return Library(acme, key, problems)


def register(target: Target, lib: Library, email: str = "ops@example.com") -> Library:
    """newAccount (RFC 8555 §7.3), with an EAB binding when the directory requires one."""
    binding = None
    if lib.acme.external_account_required():
        eab = target.new_eab()
        if eab is None:
            pytest.skip("the directory requires EAB and the target gave no (more) EAB keys")
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=lib.key.public_key(),
            kid=eab.kid,
            hmac_key=eab.hmac_key,
            directory=lib.acme.directory,
        )
    new = messages.NewRegistration.from_data(
        email=email, terms_of_service_agreed=True, external_account_binding=binding
    )
    lib.regr = lib.acme.new_account(new)
    return lib


@dataclass(frozen=True)
class Issued:
    order: messages.OrderResource
    chain: list[x509.Certificate]
    key: PrivateKeyTypes

    @property
    def cert(self) -> x509.Certificate:
        return self.chain[0]


def obtain(
    target: Target,
    lib: Library,
    names: Sequence[str] = (),
    ips: Sequence[str] = (),
    ctype: str = "http-01",
    key: PrivateKeyTypes | None = None,
) -> Issued:
    """newOrder, answer each authorization with ``ctype``, finalize, download (RFC 8555 §7.4)."""
    csr_pem, cert_key = csr_for(list(names), key, ips)
    order = lib.acme.new_order(csr_pem)
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue
        challb = next(c for c in authz.body.challenges if c.chall.typ == ctype)
        response = challb.chall.response(lib.key)
        token = challb.chall.encode("token")
        publish(target, authz.body.identifier.value, token, response.key_authorization, ctype)
        lib.acme.answer_challenge(challb, response)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=DEADLINE_SECONDS)
    order = lib.acme.poll_and_finalize(order, deadline)
    chain = x509.load_pem_x509_certificates(order.fullchain_pem.encode())
    return Issued(order, chain, cert_key)


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(dNSName values, iPAddress values as text) of a certificate's SAN extension."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = sorted(san.get_values_for_type(x509.DNSName))
    return names, sorted(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
