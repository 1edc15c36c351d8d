"""`LocalIssuer`: a CA whose issuing key certplane holds (in software or in an HSM).

Leaf certificates follow RFC 5280 and the CA/B Forum Baseline Requirements' subscriber profile:

- version 3, the caller's serial, validity exactly as requested (RFC 5280 §4.1.2.5);
- subject: empty, or CN only when requested and equal to one of the SANs (§4.1.2.6);
- subjectAltName: exactly the requested DNS names then IP addresses, critical when the subject
  is empty (§4.2.1.6);
- keyUsage (critical): digitalSignature, plus keyEncipherment for RSA subject keys (§4.2.1.3);
- extKeyUsage: serverAuth, plus clientAuth if the profile allows (§4.2.1.12);
- basicConstraints cA=FALSE, critical (§4.2.1.9); SKI (§4.2.1.2); AKI = issuer's SKI
  (§4.2.1.1); CRL distribution point (§4.2.1.13) and AIA OCSP/caIssuers (§4.2.2.1) when
  configured.

Validity beyond the issuer's notAfter is *refused* (`IssuanceRefused`), not clipped: a silently
shortened certificate surprises the subscriber and the RA, and the order's requested window is the
RA's decision. Operators roll the intermediate before it gets that close.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from .api import (
    CAError,
    DeferredHandle,
    IPAddress,
    IssuanceRefused,
    IssuanceRequest,
    Issued,
    IssuerBackend,
)
from .keys.api import SigningKey
from .profiles import Profile, inclusive_validity
from .signing import (
    authority_key_identifier,
    check_key_pair,
    check_serial,
    check_within_issuer,
    sign_and_verify,
    signature_hash,
    subject_key_identifier,
)

__all__ = ["LocalIssuer", "sign_leaf"]

_UB_COMMON_NAME = 64  # RFC 5280 Appendix A.1, ub-common-name
_SUBJECT_KEY_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)
_SOFTWARE_EC_KEY_TYPE = type(ec.derive_private_key(1, ec.SECP256R1()))
_Extension = tuple[x509.ExtensionType, bool]
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_Urls = tuple[str | None, str | None, str | None]  # CRL, caIssuers, OCSP


def _whole_seconds(moment: datetime) -> datetime:
    """X.509 times carry whole seconds (RFC 5280 §4.1.2.5.1, §4.1.2.5.2)."""
    return moment.replace(microsecond=0)


def _check_window(req: IssuanceRequest, profile: Profile, issuer: x509.Certificate) -> None:
    if req.not_before.tzinfo is None or req.not_after.tzinfo is None:
        raise IssuanceRefused("notBefore and notAfter must be timezone-aware")
    not_before, not_after = _whole_seconds(req.not_before), _whole_seconds(req.not_after)
    if not_after <= not_before:
        raise IssuanceRefused("notAfter must be later than notBefore")
    if inclusive_validity(not_before, not_after) > profile.max_validity:
        raise IssuanceRefused(
            f"validity exceeds the maximum of profile {profile.name!r} ({profile.max_validity})"
        )
    check_within_issuer(not_after, issuer)


def _check_names(req: IssuanceRequest) -> None:
    names = (*req.dns_names, *(str(ip) for ip in req.ip_addresses))
    if not names:
        raise IssuanceRefused("a certificate needs at least one DNS name or IP address")
    if len({name.lower() for name in names}) != len(names):
        raise IssuanceRefused("duplicate subject alternative names")
    for dns_name in req.dns_names:
        if not dns_name or not dns_name.isascii():
            raise IssuanceRefused(f"DNS name {dns_name!r} is not an ASCII (A-label) name")
    if req.common_name is not None:
        _check_common_name(req.common_name, names)


def _check_common_name(common_name: str, names: Sequence[str]) -> None:
    if len(common_name) > _UB_COMMON_NAME:
        raise IssuanceRefused(f"common name is longer than {_UB_COMMON_NAME} characters")
    if common_name.lower() not in {name.lower() for name in names}:
        raise IssuanceRefused("common name must be one of the subject alternative names")


def _check_request(
    req: IssuanceRequest,
    profile: Profile,
    issuer: x509.Certificate,
    path: Sequence[x509.Certificate],
) -> None:
    """Everything that makes the CA refuse a request, before anything is signed."""
    check_serial(req.serial)
    if not isinstance(req.public_key, _SUBJECT_KEY_TYPES):
        raise IssuanceRefused("subject public key type is not supported")
    _check_window(req, profile, issuer)
    _check_names(req)
    _check_name_constraints(req, path)


def _check_name_constraints(req: IssuanceRequest, path: Sequence[x509.Certificate]) -> None:
    """Every CA above the leaf (RFC 5280 §4.2.1.10, §6.1.4 (g)) may constrain names; a request
    outside any of them is refused, because relying parties would reject the certificate."""
    for ca in path:
        try:
            constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            continue
        for name in req.dns_names:
            if not _dns_allowed(name, constraints):
                raise IssuanceRefused(f"{name} is outside the issuer's name constraints")
        for address in req.ip_addresses:
            if not _ip_allowed(address, constraints):
                raise IssuanceRefused(f"{address} is outside the issuer's name constraints")


def _dns_within(name: str, subtree: str) -> bool:
    """§4.2.1.10: a DNS constraint matches the name itself and every name below it (a leading
    "." matches only names below)."""
    name, subtree = name.lower(), subtree.lower()
    if subtree.startswith("."):
        return name.endswith(subtree)
    return name == subtree or name.endswith("." + subtree)


def _wildcard_meets(base: str, subtree: str) -> bool:
    """Whether some name ``*.base`` stands for (one label over ``base``) lies in ``subtree``."""
    if _dns_within("x." + base, subtree):
        return True  # the subtree holds every name the wildcard covers
    # A subtree rooted one label below the base (bad.example.com under *.example.com).
    root = subtree.lower()
    return not root.startswith(".") and root.partition(".")[2] == base.lower()


def _dns_allowed(name: str, constraints: x509.NameConstraints) -> bool:
    """A wildcard must fit the permitted subtrees with every name it covers, and may not cover
    any excluded name (§4.2.1.10 applied to each name a "*.base" SAN stands for)."""
    excluded = [n.value for n in constraints.excluded_subtrees or [] if isinstance(n, x509.DNSName)]
    permitted = [
        n.value for n in constraints.permitted_subtrees or [] if isinstance(n, x509.DNSName)
    ]
    if name.startswith("*."):
        base = name[2:]
        if any(_wildcard_meets(base, subtree) for subtree in excluded):
            return False
        return not permitted or any(_dns_within("x." + base, subtree) for subtree in permitted)
    if any(_dns_within(name, subtree) for subtree in excluded):
        return False
    return not permitted or any(_dns_within(name, subtree) for subtree in permitted)


def _ip_networks(names: Iterable[x509.GeneralName] | None) -> list[_IPNetwork]:
    return [
        n.value
        for n in names or ()
        if isinstance(n, x509.IPAddress)
        and isinstance(n.value, ipaddress.IPv4Network | ipaddress.IPv6Network)
    ]


def _ip_allowed(address: IPAddress, constraints: x509.NameConstraints) -> bool:
    if any(address in network for network in _ip_networks(constraints.excluded_subtrees)):
        return False
    permitted = _ip_networks(constraints.permitted_subtrees)
    return not permitted or any(address in network for network in permitted)


def _subject(common_name: str | None) -> x509.Name:
    if common_name is None:
        return x509.Name([])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _subject_alt_name(req: IssuanceRequest) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in req.dns_names]
    names += [x509.IPAddress(ip) for ip in req.ip_addresses]
    return x509.SubjectAlternativeName(names)


def _key_usage(public_key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment for RSA (RSA key transport, RFC 5246 §7.4.7.1)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _distribution_points(crl_url: str) -> x509.CRLDistributionPoints:
    uri = x509.UniformResourceIdentifier(crl_url)
    return x509.CRLDistributionPoints([x509.DistributionPoint([uri], None, None, None)])


def _authority_information_access(
    ca_issuers_url: str | None, ocsp_url: str | None
) -> x509.AuthorityInformationAccess:
    """OCSP first, then caIssuers (RFC 5280 §4.2.2.1)."""
    methods = [
        (AuthorityInformationAccessOID.OCSP, ocsp_url),
        (AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers_url),
    ]
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(method, x509.UniformResourceIdentifier(url))
            for method, url in methods
            if url is not None
        ]
    )


def _leaf_extensions(
    req: IssuanceRequest,
    profile: Profile,
    issuer: x509.Certificate,
    urls: _Urls,
) -> list[_Extension]:
    crl_url, ca_issuers_url, ocsp_url = urls
    extensions: list[_Extension] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(req.public_key), True),
        (x509.ExtendedKeyUsage(profile.extended_key_usages), False),
        (subject_key_identifier(req.public_key), False),
        (authority_key_identifier(issuer), False),
        (_subject_alt_name(req), req.common_name is None),
    ]
    if crl_url is not None:
        extensions.append((_distribution_points(crl_url), False))
    if ca_issuers_url is not None or ocsp_url is not None:
        extensions.append((_authority_information_access(ca_issuers_url, ocsp_url), False))
    return extensions


def _leaf_builder(
    req: IssuanceRequest,
    profile: Profile,
    issuer: x509.Certificate,
    urls: _Urls,
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(req.common_name))
        .issuer_name(issuer.subject)
        .public_key(req.public_key)
        .serial_number(req.serial)
        .not_valid_before(_whole_seconds(req.not_before))
        .not_valid_after(_whole_seconds(req.not_after))
    )
    for extension, critical in _leaf_extensions(req, profile, issuer, urls):
        builder = builder.add_extension(extension, critical=critical)
    return builder


def sign_leaf(
    req: IssuanceRequest,
    profile: Profile,
    issuer: x509.Certificate,
    issuer_key: SigningKey,
    *,
    crl_url: str | None = None,
    ca_issuers_url: str | None = None,
    ocsp_url: str | None = None,
    above: Sequence[x509.Certificate] = (),
) -> x509.Certificate:
    """Check, build, sign and verify one leaf certificate (blocking; see the module docstring).

    ``above`` are the CA certificates above ``issuer`` (to its root): their name constraints
    bind the leaf too. Precondition: `issuer_key` belongs to `issuer` (checked once by
    `LocalIssuer`).

    Raises:
        IssuanceRefused: the request breaks the profile or RFC 5280 rules above.
        CAError: the signed certificate does not verify against the issuer.
    """
    _check_request(req, profile, issuer, [issuer, *above])
    builder = _leaf_builder(req, profile, issuer, (crl_url, ca_issuers_url, ocsp_url))
    return sign_and_verify(builder, issuer_key, issuer)


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _check_chain(issuer: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
    """The chain starts with the issuer, links up by signature and stops below the root."""
    if not chain or chain[0] != issuer:
        raise ValueError("chain must start with the issuer certificate")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ValueError("chain certificates do not link up by signature") from exc
    if any(cert.subject == cert.issuer for cert in chain):
        raise ValueError("chain must not contain a self-signed (root) certificate")
    if not all(_is_ca(cert) for cert in chain):
        raise ValueError("every certificate in the chain must be a CA (basicConstraints cA)")


def _signs_quickly(key: SigningKey) -> bool:
    """Only software EC keys sign inline: RSA is slow and PKCS#11 keys block on the token."""
    return type(key) is _SOFTWARE_EC_KEY_TYPE


class LocalIssuer:
    """An `IssuerBackend` that signs with a key certplane holds; it never defers.

    Args:
        issuer_certificate: the intermediate that signs leaves.
        chain: `issuer_certificate` followed by any further intermediates, without the root.
        signing_key: the private key of `issuer_certificate` (software or PKCS#11).
        profiles: the profiles requests may name.
        crl_url: the CRL distribution point written into leaves, if any.
        ca_issuers_url: the AIA caIssuers URL written into leaves, if any.
        ocsp_url: the AIA OCSP responder URL written into leaves, if any.
        root: the trust anchor above the chain, when known: its name constraints apply too.
        tenant_id: for an issuer dedicated to one tenant, the only tenant it signs for; a
            request for another tenant is a routing bug and raises `CAError`. None for an
            issuer shared by all tenants.

    Raises:
        ValueError: the key does not match, the chain is malformed, or the curve is unsupported.
    """

    def __init__(
        self,
        issuer_certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
        signing_key: SigningKey,
        profiles: Mapping[str, Profile],
        crl_url: str | None = None,
        *,
        ca_issuers_url: str | None = None,
        ocsp_url: str | None = None,
        tenant_id: str | None = None,
        root: x509.Certificate | None = None,
    ) -> None:
        check_key_pair(issuer_certificate, signing_key)
        signature_hash(signing_key)
        _check_chain(issuer_certificate, chain)
        self._issuer = issuer_certificate
        self._chain_pem = "".join(_pem(cert) for cert in chain)
        self._above = [*chain[1:], *([root] if root is not None else [])]
        self._key = signing_key
        self._profiles = dict(profiles)
        self._urls: _Urls = (crl_url, ca_issuers_url, ocsp_url)
        self._tenant_id = tenant_id

    def __repr__(self) -> str:
        return f"LocalIssuer(issuer={self._issuer.subject.rfc4514_string()!r})"

    async def issue(self, req: IssuanceRequest) -> Issued:
        """Sign `req` now (RSA and HSM keys sign in a worker thread).

        Raises:
            IssuanceRefused: unknown profile, or the request breaks the profile / RFC 5280.
            CAError: a request of another tenant, or the signature failed verification.
        """
        profile = self._profile_for(req)
        if _signs_quickly(self._key):
            certificate = self._sign(req, profile)
        else:
            executor = getattr(self._key, "executor", None)  # a PKCS#11 key's own thread
            loop = asyncio.get_running_loop()
            certificate = await loop.run_in_executor(executor, self._sign, req, profile)
        leaf_pem = _pem(certificate)
        return Issued(certificate_pem=leaf_pem, chain_pem=leaf_pem + self._chain_pem)

    async def poll(self, handle: DeferredHandle) -> Issued:
        """Never valid: a local issuer answers `issue` immediately.

        Raises:
            CAError: always.
        """
        raise CAError("the local issuer never defers, so there is nothing to poll")

    def _profile_for(self, req: IssuanceRequest) -> Profile:
        if self._tenant_id is not None and req.tenant_id != self._tenant_id:
            raise CAError(f"issuer of tenant {self._tenant_id} got a request of {req.tenant_id}")
        profile = self._profiles.get(req.profile)
        if profile is None:
            raise IssuanceRefused(f"unknown certificate profile {req.profile!r}")
        return profile

    def _sign(self, req: IssuanceRequest, profile: Profile) -> x509.Certificate:
        crl_url, ca_issuers_url, ocsp_url = self._urls
        return sign_leaf(
            req,
            profile,
            self._issuer,
            self._key,
            crl_url=crl_url,
            ca_issuers_url=ca_issuers_url,
            ocsp_url=ocsp_url,
            above=self._above,
        )


if TYPE_CHECKING:

    def _conforms(issuer: LocalIssuer) -> IssuerBackend:
        """Static check that `LocalIssuer` satisfies the `IssuerBackend` protocol."""
        return issuer
