"""Building the CA hierarchy: root, intermediates, and the platform's own TLS certificate.

Profiles follow RFC 5280 and the CA/B Forum BR §7.1.2: CA certificates carry a critical
basicConstraints cA=TRUE (§4.2.1.9), a critical keyUsage with keyCertSign and cRLSign (§4.2.1.3),
and key identifiers (§4.2.1.1, §4.2.1.2). Every certificate is verified after signing.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .api import IPAddress, IssuanceRequest, new_serial
from .keys.api import SigningKey
from .local import sign_leaf
from .profiles import ONE_SECOND, Profile
from .signing import (
    authority_key_identifier,
    check_key_pair,
    check_within_issuer,
    sign_and_verify,
    signature_hash,
    subject_key_identifier,
)

__all__ = [
    "IPNetwork",
    "check_alternate_chain",
    "check_imported_ca",
    "create_ca_csr",
    "create_intermediate",
    "create_ocsp_responder_certificate",
    "create_root",
    "create_tls_server_certificate",
]

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

CA_BACKDATE = timedelta(hours=1)
"""CA certificates start an hour before creation, absorbing relying parties' clock skew."""

_ALL_IP_ADDRESSES: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("0.0.0.0/0"),
    ipaddress.IPv6Network("::/0"),
)


def _name(common_name: str, organization: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _ca_window(validity: timedelta, now: datetime | None) -> tuple[datetime, datetime]:
    """(notBefore, notAfter), inclusive, covering exactly `validity` (RFC 5280 §4.1.2.5)."""
    not_before = ((now or datetime.now(UTC)) - CA_BACKDATE).replace(microsecond=0)
    return not_before, not_before + validity - ONE_SECOND


def _ca_key_usage(*, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    window: tuple[datetime, datetime],
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(window[0])
        .not_valid_after(window[1])
        .add_extension(subject_key_identifier(public_key), critical=False)
    )


def create_root(
    key: SigningKey,
    common_name: str,
    organization: str,
    validity: timedelta,
    *,
    path_length: int | None = 1,
    now: datetime | None = None,
) -> x509.Certificate:
    """A self-signed root CA certificate.

    `path_length` 1 (the default) allows one level of intermediates below the root; None
    leaves the depth unconstrained (RFC 5280 §4.2.1.9).
    """
    name = _name(common_name, organization)
    builder = (
        _ca_builder(name, name, key.public_key(), _ca_window(validity, now))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_key_usage(digital_signature=False), critical=True)
    )
    return sign_and_verify(builder, key, None)


def _name_constraints(
    permitted_dns_names: Sequence[str], permitted_ip_networks: Sequence[IPNetwork]
) -> x509.NameConstraints | None:
    """Constrain DNS names to the given subtrees and IP addresses to the given networks (none
    when empty), as a BR §7.1.2.5.2 technically constrained CA (RFC 5280 §4.2.1.10)."""
    if not permitted_dns_names and not permitted_ip_networks:
        return None
    permitted: list[x509.GeneralName] = [x509.DNSName(name) for name in permitted_dns_names]
    permitted += [x509.IPAddress(network) for network in permitted_ip_networks]
    excluded = None if permitted_ip_networks else [x509.IPAddress(n) for n in _ALL_IP_ADDRESSES]
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)


def _check_can_certify_ca(issuer: x509.Certificate) -> None:
    constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not constraints.ca or constraints.path_length == 0:
        raise ValueError("the issuer may not certify another CA (basicConstraints)")


def _intermediate_extensions(
    issuer: x509.Certificate,
    crl_url: str | None,
    name_constraints: x509.NameConstraints | None,
    server_client_eku: bool,
) -> list[tuple[x509.ExtensionType, bool]]:
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (_ca_key_usage(digital_signature=True), True),
        (authority_key_identifier(issuer), False),
    ]
    if server_client_eku:
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        extensions.append((x509.ExtendedKeyUsage(ekus), False))
    if crl_url is not None:
        uri = x509.UniformResourceIdentifier(crl_url)
        dp = x509.CRLDistributionPoints([x509.DistributionPoint([uri], None, None, None)])
        extensions.append((dp, False))
    if name_constraints is not None:
        extensions.append((name_constraints, True))
    return extensions


def create_intermediate(
    issuer_cert: x509.Certificate,
    issuer_key: SigningKey,
    subject_public_key: CertificatePublicKeyTypes,
    common_name: str,
    organization: str,
    validity: timedelta,
    crl_url: str | None = None,
    permitted_dns_names: Sequence[str] = (),
    *,
    permitted_ip_networks: Sequence[IPNetwork] = (),
    server_client_eku: bool = True,
    now: datetime | None = None,
) -> x509.Certificate:
    """An intermediate CA (pathLen 0) signed by `issuer_cert`/`issuer_key`.

    keyUsage adds digitalSignature (to sign OCSP responses directly). With `server_client_eku`
    the EKU is limited to serverAuth+clientAuth (BR §7.1.2.2). `crl_url` is the issuer's CRL
    that covers this certificate. Non-empty `permitted_dns_names` or `permitted_ip_networks`
    add critical nameConstraints; IP addresses are then limited to `permitted_ip_networks`.

    Raises:
        ValueError: `issuer_key` does not match `issuer_cert`, or the issuer may not certify CAs.
        IssuanceRefused: the validity would end after the issuer's.
    """
    check_key_pair(issuer_cert, issuer_key)
    _check_can_certify_ca(issuer_cert)
    window = _ca_window(validity, now)
    check_within_issuer(window[1], issuer_cert)
    constraints = _name_constraints(permitted_dns_names, permitted_ip_networks)
    builder = _ca_builder(
        _name(common_name, organization), issuer_cert.subject, subject_public_key, window
    )
    for extension, critical in _intermediate_extensions(
        issuer_cert, crl_url, constraints, server_client_eku
    ):
        builder = builder.add_extension(extension, critical=critical)
    return sign_and_verify(builder, issuer_key, issuer_cert)


def create_tls_server_certificate(
    issuer_cert: x509.Certificate,
    issuer_key: SigningKey,
    subject_public_key: CertificatePublicKeyTypes,
    dns_names: Sequence[str],
    ip_addresses: Sequence[IPAddress] = (),
    validity: timedelta = timedelta(days=90),
    *,
    now: datetime | None = None,
) -> x509.Certificate:
    """A serverAuth leaf for certplane's own HTTPS listener (e.g. "localhost", 127.0.0.1, ::1).

    The same leaf profile as `LocalIssuer` (see `certplane.ca.local`), with an empty subject.

    Raises:
        ValueError: `issuer_key` does not match `issuer_cert`.
        IssuanceRefused: no names, or the validity would end after the issuer's.
    """
    check_key_pair(issuer_cert, issuer_key)
    profile = Profile(name="platform-tls", validity=validity, max_validity=validity)
    not_before, not_after = profile.validity_window(now or datetime.now(UTC))
    request = IssuanceRequest(
        tenant_id="platform",
        serial=new_serial(),
        public_key=subject_public_key,
        dns_names=tuple(dns_names),
        ip_addresses=tuple(ip_addresses),
        not_before=not_before,
        not_after=not_after,
        profile=profile.name,
    )
    return sign_leaf(request, profile, issuer_cert, issuer_key)


def create_ocsp_responder_certificate(
    issuer_cert: x509.Certificate,
    issuer_key: SigningKey,
    subject_public_key: CertificatePublicKeyTypes,
    validity: timedelta,
    *,
    now: datetime | None = None,
) -> x509.Certificate:
    """A delegated OCSP responder certificate (RFC 6960 §4.2.2.2): issued directly by the CA,
    id-kp-OCSPSigning, digitalSignature only, and id-pkix-ocsp-nocheck (§4.2.2.2.1) so clients
    do not ask about the responder itself; keep it short-lived.

    Raises:
        ValueError: `issuer_key` does not match `issuer_cert`.
        IssuanceRefused: the validity would end after the issuer's.
    """
    check_key_pair(issuer_cert, issuer_key)
    start = (now or datetime.now(UTC)).replace(microsecond=0) - CA_BACKDATE
    end = start + CA_BACKDATE + validity
    check_within_issuer(end, issuer_cert)
    cn = issuer_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer_name = cn[0].value if cn and isinstance(cn[0].value, str) else "certplane"
    name = f"{issuer_name} OCSP Responder"
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(name)[:64])]))
        .issuer_name(issuer_cert.subject)
        .public_key(subject_public_key)
        .serial_number(new_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_ocsp_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(subject_key_identifier(subject_public_key), critical=False)
        .add_extension(authority_key_identifier(issuer_cert), critical=False)
    )
    return sign_and_verify(builder, issuer_key, issuer_cert)


def _ocsp_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def create_ca_csr(
    key: SigningKey, common_name: str, organization: str
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request (RFC 2986) for a customer's root to sign as our intermediate: it asks
    for cA=TRUE, pathLen 0 and keyCertSign/cRLSign (the signer decides what it grants)."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(common_name, organization))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(digital_signature=True), critical=True)
    )
    csr = builder.sign(key, signature_hash(key))
    if not csr.is_signature_valid:
        raise ValueError("the CSR signature does not verify")
    return csr


def check_imported_ca(
    certificate_pem: str,
    chain_pem: str,
    root_pem: str,
    public_key: CertificatePublicKeyTypes,
    now: datetime,
) -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate]:
    """Check a customer-signed intermediate before it may issue (RFC 5280 §6 basics).

    It must certify ``public_key`` (ours), be a CA that may sign certificates (basicConstraints
    cA=TRUE, keyUsage keyCertSign, §4.2.1.9, §4.2.1.3), be valid now, and chain by signature
    through ``chain_pem`` (intermediates, in order) to ``root_pem``, a self-signed CA whose
    signature verifies. Every CA's pathLenConstraint must leave room for the CAs below it, and
    an extendedKeyUsage anywhere in the path must allow serverAuth; name constraints in the path
    are enforced at each issuance.

    Returns:
        (certificate, chain between it and the root, root).

    Raises:
        ValueError: any of it does not hold; the message says which.
    """
    certificate = _one_certificate(certificate_pem, "certificate")
    root = _one_certificate(root_pem, "root")
    chain = x509.load_pem_x509_certificates(chain_pem.encode()) if chain_pem.strip() else []
    if certificate.public_key() != public_key:
        raise ValueError("the certificate does not certify this issuer's key")
    for cert in (certificate, *chain, root):
        _check_ca(cert, now)
    if root.subject != root.issuer:
        raise ValueError("the root is not self-signed")
    path = [certificate, *chain, root]
    _check_links(path)
    try:
        root.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError("the root's self-signature does not verify") from None
    for cas_below, cert in enumerate(path):
        _check_path_length(cert, cas_below)
        _check_server_auth(cert)
    return certificate, chain, root


def _check_path_length(cert: x509.Certificate, cas_below: int) -> None:
    """§4.2.1.9: pathLenConstraint bounds the CA certificates that may follow this one."""
    limit = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    if limit is not None and limit < cas_below:
        raise ValueError(
            f"{cert.subject.rfc4514_string()} allows {limit} CA certificate(s) below it "
            f"(pathLenConstraint), the chain has {cas_below}"
        )


def _check_server_auth(cert: x509.Certificate) -> None:
    """A CA whose extendedKeyUsage lacks serverAuth makes TLS clients reject its leaves."""
    try:
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return
    if not {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & usages:
        raise ValueError(f"{cert.subject.rfc4514_string()} does not allow serverAuth (EKU)")


def check_alternate_chain(
    issuer: x509.Certificate, chain_pem: str, now: datetime
) -> list[x509.Certificate]:
    """Another chain above ``issuer`` (for example its issuer cross-signed by another root):
    CA certificates, valid now, the first one signed ``issuer`` and each the one before it;
    the trust anchor (a self-signed root) is left out, as in the default chain.

    Raises:
        ValueError: it is empty or any of that does not hold.
    """
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise ValueError("the chain is not a list of PEM certificates") from None
    for cert in chain:
        _check_ca(cert, now)
        if cert.subject == cert.issuer:
            raise ValueError("leave the self-signed root out of the chain")
    _check_links([issuer, *chain])
    return chain


def _check_links(path: Sequence[x509.Certificate]) -> None:
    for child, parent in itertools.pairwise(path):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            names = child.subject.rfc4514_string(), parent.subject.rfc4514_string()
            raise ValueError("{} is not signed by {}".format(*names)) from None


def _one_certificate(pem: str, what: str) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError(f"the {what} is not a PEM certificate") from None
    if len(certificates) != 1:
        raise ValueError(f"expected one {what} certificate, got {len(certificates)}")
    return certificates[0]


def _check_ca(certificate: x509.Certificate, now: datetime) -> None:
    name = certificate.subject.rfc4514_string()
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise ValueError(f"{name} lacks {exc.oid._name}") from None
    if not constraints.ca or not usage.key_cert_sign:
        raise ValueError(f"{name} is not a CA (basicConstraints cA, keyUsage keyCertSign)")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise ValueError(f"{name} is not valid now")
