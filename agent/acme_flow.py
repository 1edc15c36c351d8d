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
from typing import Any, Protocol, cast

import requests
from acme import challenges, client, crypto_util, errors, messages
from acme.client import _renewal_info_path_component
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from josepy.b64 import b64encode
from josepy.interfaces import JSONDeSerializable
from josepy.json_util import field
from josepy.jwa import ES256, RS256, JWASignature
from josepy.jwk import JWK, JWKRSA

log = logging.getLogger(__name__)

USER_AGENT = "certplane-agent"
ORDER_DEADLINE = datetime.timedelta(minutes=3)
TLS_ALPN_01 = "tls-alpn-01"


class ReplacingOrder(messages.NewOrder):
    """newOrder with RFC 9773 §5's ``replaces`` (certbot 5's message does not carry it)."""

    replaces: str | None = field("replaces", omitempty=True)


class JsonPayload(JSONDeSerializable):
    """Any JSON object as the payload of a signed POST (the library signs what
    ``json_dumps`` renders)."""

    def __init__(self, payload: dict[str, object]) -> None:
        self.payload = payload

    def to_partial_json(self) -> dict[str, object]:
        return self.payload

    @classmethod
    def from_json(cls, jobj: Any) -> JsonPayload:
        if not isinstance(jobj, dict):
            raise TypeError("a JSON object is expected")
        return cls(jobj)


class TlsAlpn01Response(challenges.KeyAuthorizationChallengeResponse):
    """The answer to a tls-alpn-01 challenge, which certbot 5's acme library does not know: it
    holds the key authorization and goes on the wire as ``{}`` (RFC 8555 §7.5.1, RFC 8737 §3).
    A response without fields would be falsy and sent as a POST-as-GET, which answers nothing.
    """

    typ = TLS_ALPN_01


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
        raw = self._net.get(directory_url).json()
        # the library's Directory.Meta keeps only the fields it knows: keep the others here
        meta = raw.get("meta") if isinstance(raw, dict) else None
        self._meta: dict[str, object] = dict(meta) if isinstance(meta, dict) else {}
        directory = messages.Directory.from_json(raw)
        self._client = client.ClientV2(directory, self._net)

    @property
    def directory(self) -> messages.Directory:
        return self._client.directory

    @property
    def inventory_url(self) -> str | None:
        """Where certplane takes inventory reports (directory ``meta.certplaneInventory``);
        None when the CA is not certplane or does not offer it."""
        url = self._meta.get("certplaneInventory")
        return url if isinstance(url, str) and url else None

    def post_json(self, url: str, payload: dict[str, object]) -> dict[str, object]:
        """POST ``payload`` as an account request (RFC 8555 §6.2: a JWS signed with the
        account key, kid, fresh nonce, one retry on badNonce) and return the JSON answer.

        Precondition: the account is enrolled (``enroll``), so the request carries its kid.
        Raises AcmeFailure naming the problem when the server refuses or cannot be reached.
        """
        if self._net.account is None:
            raise AcmeFailure("post_json needs an enrolled account (call enroll first)")
        try:
            response = self._client._post(url, JsonPayload(payload))
            answer = response.json()
        except (messages.Error, errors.Error, requests.RequestException, ValueError) as exc:
            raise AcmeFailure(f"POST {url} failed: {_describe(exc)}") from None
        if not isinstance(answer, dict):
            raise AcmeFailure(f"POST {url}: the answer is not a JSON object")
        return answer

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
            solver = solvers.get(_challenge_type(challb))
            if solver is None:
                continue
            token, validation, response = self._validation(challb)
            solver.present(identifier, token, validation)
            self._client.answer_challenge(challb, response)
            return solver, identifier, token
        offered = ", ".join(_challenge_type(c) for c in authz.body.challenges)
        raise AcmeFailure(
            f"{identifier}: no configured solver for the challenges offered ({offered})"
        )

    def _validation(
        self, challb: messages.ChallengeBody
    ) -> tuple[str, str, challenges.ChallengeResponse]:
        """The token, what the solver presents, and the response to POST (§7.5.1)."""
        if _challenge_type(challb) == TLS_ALPN_01:
            # certbot 5's acme library does not know tls-alpn-01 (an UnrecognizedChallenge):
            # the key authorization (§8.1) is made here.
            token = str(challb.chall.to_partial_json().get("token", ""))
            authorization = key_authorization(token, self._account_key)
            return token, authorization, TlsAlpn01Response(key_authorization=authorization)
        token = challb.chall.encode("token")
        response, validation = challb.response_and_validation(self._net.key)
        # http-01: the key authorization (§8.3); dns-01: its digest for the TXT record (§8.4)
        return token, str(validation), response

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


def _challenge_type(challb: messages.ChallengeBody) -> str:
    """The challenge's ``type``, also for one the acme library does not know."""
    return str(challb.chall.to_partial_json().get("type"))


def key_authorization(token: str, account_key: JWK) -> str:
    """token || "." || base64url(SHA-256 JWK thumbprint of the account key) (RFC 8555 §8.1)."""
    return token + "." + b64encode(account_key.thumbprint(hash_function=hashes.SHA256)).decode()


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
