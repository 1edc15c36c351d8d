"""The agent's ACME conversation (RFC 8555), on certbot's ``acme`` library: account enrollment
with External Account Binding (§7.3.4), orders with ``replaces`` (RFC 9773 §5), challenges
answered by a solver, finalization, and ACME Renewal Information (RFC 9773 §4).

Keys are generated on the host (``keys.py``) and never leave it: only the CSR is sent.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import requests
from acme import client, crypto_util, errors, messages
from acme.client import _renewal_info_path_component
from cryptography import x509
from josepy.json_util import field
from josepy.jwa import ES256, RS256, JWASignature
from josepy.jwk import JWK, JWKRSA

log = logging.getLogger(__name__)

USER_AGENT = "certplane-agent"
ORDER_DEADLINE = datetime.timedelta(minutes=3)


class ReplacingOrder(messages.NewOrder):
    """newOrder with RFC 9773 §5's ``replaces`` (certbot 5's message does not carry it)."""

    replaces: str | None = field("replaces", omitempty=True)


class Solver(Protocol):
    """Proves control of identifiers for one challenge type (RFC 8555 §8)."""

    challenge_type: str

    def present(self, identifier: str, token: str, key_authorization: str) -> None: ...

    def cleanup(self, identifier: str, token: str) -> None: ...


class AcmeFailure(Exception):
    """The CA refused or the flow failed; the message says where and why."""


@dataclass(frozen=True)
class Issued:
    """What an order produced: the leaf, its chain and both together (PEM)."""

    cert_pem: str
    chain_pem: str
    fullchain_pem: str


@dataclass(frozen=True)
class RenewalWindow:
    """RFC 9773 §4.2: the suggested window and when to ask again (Retry-After)."""

    start: datetime.datetime
    end: datetime.datetime
    ask_again_at: datetime.datetime


def _alg(key: JWK) -> JWASignature:
    return RS256 if isinstance(key, JWKRSA) else ES256


class AcmeSession:
    """One account key at one directory."""

    def __init__(self, directory_url: str, account_key: JWK, ca_bundle: str | None) -> None:
        # requests takes a CA bundle's path where the library's annotation says bool
        verify = cast(bool, ca_bundle or True)
        self._net = client.ClientNetwork(
            account_key, alg=_alg(account_key), user_agent=USER_AGENT, verify_ssl=verify
        )
        self._directory_url = directory_url
        self._account_key = account_key
        directory = messages.Directory.from_json(self._net.get(directory_url).json())
        self._client = client.ClientV2(directory, self._net)

    @property
    def directory(self) -> messages.Directory:
        return self._client.directory

    def enroll(
        self, *, eab_kid: str | None, eab_hmac_key: str | None, contact: Sequence[str]
    ) -> str:
        """The account URL of this key: the existing account, or a new one bound with the EAB
        key (RFC 8555 §7.3.1, §7.3.4). Safe to repeat."""
        if self._net.account is not None:  # this session found or created it already
            return str(self._net.account.uri)
        try:
            existing = self._client.new_account(messages.NewRegistration(only_return_existing=True))
            return str(existing.uri)
        except errors.ConflictError as conflict:
            # §7.3.1: the key's account exists; later requests are signed with its URL (kid)
            self._net.account = messages.RegistrationResource(
                body=messages.Registration(), uri=conflict.location
            )
            return str(conflict.location)
        except messages.Error as error:
            if error.code != "accountDoesNotExist":
                raise AcmeFailure(f"account lookup refused: {error.detail}") from None
        binding = None
        if eab_kid and eab_hmac_key:
            binding = messages.ExternalAccountBinding.from_data(
                account_public_key=self._account_key.public_key(),
                kid=eab_kid,
                hmac_key=eab_hmac_key,
                directory=self._client.directory,
            )
        registration = messages.NewRegistration.from_data(
            email=",".join(contact) if contact else None,
            terms_of_service_agreed=True,
            external_account_binding=binding,
        )
        try:
            return str(self._client.new_account(registration).uri)
        except messages.Error as error:
            raise AcmeFailure(f"enrollment refused: {error.detail}") from None

    def issue(
        self, csr_pem: bytes, solvers: dict[str, Solver], *, replaces: str | None = None
    ) -> Issued:
        """Order, prove control with the configured solver, finalize, download (§7.4)."""
        order = self._new_order(csr_pem, replaces)
        answered: list[tuple[Solver, str, str]] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue
                answered.append(self._answer(authz, solvers))
            deadline = datetime.datetime.now() + ORDER_DEADLINE
            done = self._client.poll_and_finalize(order, deadline)
        except (messages.Error, errors.Error, requests.RequestException) as exc:
            raise AcmeFailure(f"order failed: {_describe(exc)}") from None
        finally:
            for solver, identifier, token in answered:
                solver.cleanup(identifier, token)
        return split_chain(done.fullchain_pem)

    def _new_order(self, csr_pem: bytes, replaces: str | None) -> messages.OrderResource:
        if replaces is None:
            try:
                return self._client.new_order(csr_pem)
            except messages.Error as error:
                raise AcmeFailure(f"newOrder refused: {_describe(error)}") from None
        return self._replacing_order(csr_pem, replaces)

    def _replacing_order(self, csr_pem: bytes, replaces: str) -> messages.OrderResource:
        """newOrder naming the certificate it replaces (ARI lets the CA exempt it from limits
        and retire the old certificate's window)."""
        csr = x509.load_pem_x509_csr(csr_pem)
        dns_names, ips = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        identifiers = [
            messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in dns_names
        ]
        identifiers += [messages.Identifier(typ=messages.IDENTIFIER_IP, value=str(a)) for a in ips]
        body = ReplacingOrder(identifiers=identifiers, replaces=replaces)
        try:
            response = self._client._post(self._client.directory["newOrder"], body)
        except messages.Error as error:
            raise AcmeFailure(f"newOrder refused: {_describe(error)}") from None
        order = messages.Order.from_json(response.json())
        authorizations = [
            self._client._authzr_from_response(self._client._post_as_get(url), uri=url)
            for url in order.authorizations
        ]
        return messages.OrderResource(
            body=order,
            uri=response.headers.get("Location"),
            authorizations=authorizations,
            csr_pem=csr_pem,
        )

    def _answer(
        self, authz: messages.AuthorizationResource, solvers: dict[str, Solver]
    ) -> tuple[Solver, str, str]:
        identifier = authz.body.identifier.value
        for challb in authz.body.challenges:
            solver = solvers.get(challb.chall.typ)
            if solver is None:
                continue
            token = challb.chall.encode("token")
            response, validation = challb.response_and_validation(self._net.key)
            # http-01: the key authorization (§8.3); dns-01: its digest for the TXT record (§8.4)
            solver.present(identifier, token, str(validation))
            self._client.answer_challenge(challb, response)
            return solver, identifier, token
        offered = ", ".join(str(c.to_partial_json().get("type")) for c in authz.body.challenges)
        raise AcmeFailure(
            f"{identifier}: no configured solver for the challenges offered ({offered})"
        )

    def renewal_window(self, cert_pem: str, now: datetime.datetime) -> RenewalWindow | None:
        """The CA's suggested renewal window (RFC 9773 §4.2), None when it offers no ARI."""
        try:
            base = self._client.directory["renewalInfo"]
        except KeyError:
            return None
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        url = base + "/" + _renewal_info_path_component(cert)
        try:
            response = self._net.get(url, content_type="application/json")
        except (messages.Error, errors.Error, requests.RequestException) as exc:
            raise AcmeFailure(f"renewalInfo failed: {_describe(exc)}") from None
        info = messages.RenewalInfo.from_json(response.json())
        retry = _retry_after_seconds(response.headers.get("Retry-After"), default=6 * 3600)
        window = info.suggested_window
        return RenewalWindow(
            _aware(window.start), _aware(window.end), now + datetime.timedelta(seconds=retry)
        )


def _aware(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _retry_after_seconds(value: str | None, *, default: int) -> int:
    if value is None or not value.strip().isdigit():
        return default
    return max(60, min(int(value), 7 * 86400))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, messages.Error):
        return f"{exc.typ}: {exc.detail}"
    return f"{type(exc).__name__}: {exc}"


def split_chain(fullchain_pem: str) -> Issued:
    marker = "-----END CERTIFICATE-----"
    end = fullchain_pem.index(marker) + len(marker)
    cert = fullchain_pem[:end].strip() + "\n"
    chain = fullchain_pem[end:].strip()
    return Issued(cert, chain + "\n" if chain else "", fullchain_pem)
