"""LocalIssuer: the leaf profile (RFC 5280), chain output, refusals, and `openssl verify`."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certplane.ca.api import CAError, IssuanceRefused, IssuanceRequest, Issued
from certplane.ca.hierarchy import create_intermediate
from certplane.ca.keys.api import KeyAlgorithm, tenant_binding
from certplane.ca.keys.software import generate_private_key
from certplane.ca.local import LocalIssuer
from certplane.ca.profiles import DEFAULT_PROFILES, Profile

from .conftest import Hierarchy, keystore_intermediate, sibling_intermediate

CRL_URL = "http://crl.certplane.test/int.crl"
CA_ISSUERS_URL = "http://certs.certplane.test/int.der"

MakeRequest = Callable[..., IssuanceRequest]
IssuerFor = Callable[..., LocalIssuer]


def _leaf(issued: Issued) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.certificate_pem.encode())


def _ext(cert: x509.Certificate, kind: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(kind)


async def _issue(issuer: LocalIssuer, req: IssuanceRequest) -> x509.Certificate:
    return _leaf(await issuer.issue(req))


async def test_leaf_fields(
    hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    req = make_request()
    cert = await _issue(issuer_for(hierarchy), req)
    assert cert.version is x509.Version.v3
    assert cert.serial_number == req.serial
    assert cert.issuer == hierarchy.intermediate.subject
    assert cert.subject == x509.Name([])
    assert cert.not_valid_before_utc == req.not_before
    assert cert.not_valid_after_utc == req.not_after
    assert _spki(cert.public_key()) == _spki(req.public_key)


async def test_subject_alt_names_are_exactly_the_requested_ones(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    req = make_request()
    san = _ext(await _issue(issuer_for(ec_hierarchy), req), x509.SubjectAlternativeName)
    assert san.critical, "SAN must be critical when the subject is empty (RFC 5280 4.2.1.6)"
    assert list(san.value) == [
        x509.DNSName("www.example.com"),
        x509.DNSName("example.com"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::7")),
    ]


async def test_common_name_among_sans(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    cert = await _issue(issuer_for(ec_hierarchy), make_request(common_name="example.com"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "example.com"
    assert not _ext(cert, x509.SubjectAlternativeName).critical


async def test_ip_common_name_is_accepted(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    cert = await _issue(issuer_for(ec_hierarchy), make_request(common_name="2001:db8::7"))
    assert cert.subject.rfc4514_string() == "CN=2001:db8::7"


@pytest.mark.parametrize(
    ("profile", "ekus"),
    [
        ("default", [ExtendedKeyUsageOID.SERVER_AUTH]),
        ("tls-client-server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
async def test_extended_key_usage_follows_the_profile(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest, profile: str, ekus: list
) -> None:
    eku = _ext(
        await _issue(issuer_for(ec_hierarchy), make_request(profile=profile)), x509.ExtendedKeyUsage
    )
    assert not eku.critical
    assert list(eku.value) == ekus


@pytest.mark.parametrize(
    ("subject_key", "key_encipherment"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()).public_key(), False),
        (lambda: rsa.generate_private_key(65537, 2048).public_key(), True),
        (lambda: ed25519.Ed25519PrivateKey.generate().public_key(), False),
    ],
    ids=["ec", "rsa", "ed25519"],
)
async def test_key_usage_follows_the_subject_key(
    ec_hierarchy: Any,
    issuer_for: IssuerFor,
    make_request: MakeRequest,
    subject_key: Callable[[], Any],
    key_encipherment: bool,
) -> None:
    ku = _ext(
        await _issue(issuer_for(ec_hierarchy), make_request(public_key=subject_key())),
        x509.KeyUsage,
    )
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_encipherment is key_encipherment
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.content_commitment)


async def test_ca_extensions(
    hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    req = make_request()
    cert = await _issue(issuer_for(hierarchy), req)
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    issuer_ski = _ext(hierarchy.intermediate, x509.SubjectKeyIdentifier).value
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    assert aki.value.key_identifier == issuer_ski.digest
    assert not aki.critical
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(req.public_key)


async def test_crl_distribution_point_and_aia(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    cert = await _issue(issuer_for(ec_hierarchy), make_request())
    (point,) = _ext(cert, x509.CRLDistributionPoints).value
    assert point.full_name == [x509.UniformResourceIdentifier(CRL_URL)]
    (access,) = _ext(cert, x509.AuthorityInformationAccess).value
    assert access.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    assert access.access_location == x509.UniformResourceIdentifier(CA_ISSUERS_URL)


async def test_no_urls_when_not_configured(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    cert = await _issue(issuer_for(ec_hierarchy, crl_url=None, ca_issuers_url=None), make_request())
    for kind in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(kind)


async def test_signature_hash_matches_the_issuer_key(
    hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    cert = await _issue(issuer_for(hierarchy), make_request())
    key = hierarchy.intermediate_key
    expected = (
        hashes.SHA384
        if isinstance(key, ec.EllipticCurvePrivateKey) and (key.curve.name == "secp384r1")
        else hashes.SHA256
    )
    assert isinstance(cert.signature_hash_algorithm, expected)
    cert.verify_directly_issued_by(hierarchy.intermediate)


async def test_chain_is_leaf_then_intermediate(
    hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    issued = await issuer_for(hierarchy).issue(make_request())
    chain = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    assert chain == [_leaf(issued), hierarchy.intermediate]
    assert issued.chain_pem.startswith(issued.certificate_pem)
    assert issued.certificate_der == _leaf(issued).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("profile", "purpose"), [("default", "sslserver"), ("tls-client-server", "sslclient")]
)
async def test_openssl_verifies_the_chain(
    hierarchy: Any,
    issuer_for: IssuerFor,
    make_request: MakeRequest,
    openssl_verify: Callable[..., Any],
    profile: str,
    purpose: str,
) -> None:
    issued = await issuer_for(hierarchy).issue(make_request(profile=profile))
    result = openssl_verify(
        hierarchy.root, [hierarchy.intermediate], issued.certificate_pem, "-purpose", purpose
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


async def test_openssl_rejects_a_leaf_from_another_hierarchy(
    ec_hierarchy: Any,
    issuer_for: IssuerFor,
    make_request: MakeRequest,
    openssl_verify: Callable[..., Any],
) -> None:
    from certplane.ca.hierarchy import create_root

    issued = await issuer_for(ec_hierarchy).issue(make_request())
    other_root_key = ec.generate_private_key(ec.SECP384R1())
    other_root = create_root(other_root_key, "Other Root", "elsewhere", timedelta(days=30))
    result = openssl_verify(other_root, [ec_hierarchy.intermediate], issued.certificate_pem)
    assert result.returncode != 0


async def test_issuer_key_from_each_keystore(
    ec_hierarchy: Any,
    make_request: MakeRequest,
    openssl_verify: Callable[..., Any],
    keystore_factory: Callable[[], Any],
) -> None:
    """A local CA with a keystore key (software, SoftHSM2) is a combination, not a backend."""
    h = keystore_intermediate(keystore_factory(), ec_hierarchy, tenant_binding("tenant-a"))
    issuer = LocalIssuer(h.intermediate, [h.intermediate], h.intermediate_key, DEFAULT_PROFILES)
    issued = await issuer.issue(make_request())
    result = openssl_verify(h.root, [h.intermediate], issued.certificate_pem)
    assert result.returncode == 0, result.stdout + result.stderr


# --- refusals ---


async def test_not_after_beyond_the_issuer_is_refused(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    limit = ec_hierarchy.intermediate.not_valid_after_utc
    long_profile = Profile(
        name="long", validity=timedelta(days=400), max_validity=timedelta(days=800)
    )
    issuer = LocalIssuer(
        ec_hierarchy.intermediate,
        [ec_hierarchy.intermediate],
        ec_hierarchy.intermediate_key,
        {"long": long_profile},
    )
    at_limit = make_request(profile="long", not_before=limit - timedelta(days=30), not_after=limit)
    assert _leaf(await issuer.issue(at_limit)).not_valid_after_utc == limit
    beyond = make_request(
        profile="long",
        not_before=limit - timedelta(days=30),
        not_after=limit + timedelta(seconds=1),
    )
    with pytest.raises(IssuanceRefused, match="after the issuer's notAfter") as caught:
        await issuer.issue(beyond)
    assert limit.isoformat() in caught.value.detail


def _window(days: float) -> dict[str, datetime]:
    not_before = datetime.now(UTC).replace(microsecond=0)
    return {"not_before": not_before, "not_after": not_before + timedelta(days=days)}


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"profile": "no-such-profile"}, "unknown certificate profile"),
        ({"common_name": "other.example"}, "common name must be one of"),
        ({"common_name": "a" * 65, "dns_names": ("a" * 65,)}, "longer than 64"),
        ({"dns_names": (), "ip_addresses": ()}, "at least one"),
        ({"dns_names": ("a.example", "A.example")}, "duplicate"),
        ({"dns_names": ("bücher.example",)}, "A-label"),
        ({"dns_names": ("",)}, "A-label"),
        ({"serial": 0}, "serial number"),
        ({"serial": -5}, "serial number"),
        ({"serial": 1 << 159}, "serial number"),
        ({"public_key": x25519.X25519PrivateKey.generate().public_key()}, "key type"),
        (_window(101), "maximum of profile"),
        (_window(-1), "later than notBefore"),
        ({"not_before": datetime(2030, 1, 1), "not_after": datetime(2030, 2, 1)}, "timezone"),
    ],
)
async def test_refusals(
    ec_hierarchy: Any,
    issuer_for: IssuerFor,
    make_request: MakeRequest,
    overrides: dict[str, Any],
    detail: str,
) -> None:
    with pytest.raises(IssuanceRefused, match=detail) as caught:
        await issuer_for(ec_hierarchy).issue(make_request(**overrides))
    assert caught.value.detail == str(caught.value)


async def test_exactly_max_validity_is_accepted(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    not_before = datetime.now(UTC).replace(microsecond=0)
    not_after = not_before + DEFAULT_PROFILES["default"].max_validity - timedelta(seconds=1)
    cert = await _issue(
        issuer_for(ec_hierarchy), make_request(not_before=not_before, not_after=not_after)
    )
    assert cert.not_valid_after_utc == not_after


async def test_a_dedicated_issuer_signs_only_for_its_tenant(
    ec_hierarchy: Any, issuer_for: IssuerFor, make_request: MakeRequest
) -> None:
    issuer = issuer_for(ec_hierarchy, tenant_id="tenant-a")
    await issuer.issue(make_request(tenant_id="tenant-a"))
    with pytest.raises(CAError, match="tenant-b") as caught:
        await issuer.issue(make_request(tenant_id="tenant-b"))
    assert not isinstance(caught.value, IssuanceRefused)


async def test_poll_is_an_error(ec_hierarchy: Any, issuer_for: IssuerFor) -> None:
    with pytest.raises(CAError, match="never defers"):
        await issuer_for(ec_hierarchy).poll("anything")


# --- construction ---


def test_key_must_match_the_issuer(ec_hierarchy: Any) -> None:
    with pytest.raises(ValueError, match="does not match"):
        LocalIssuer(
            ec_hierarchy.intermediate,
            [ec_hierarchy.intermediate],
            ec.generate_private_key(ec.SECP256R1()),
            DEFAULT_PROFILES,
        )


def test_chain_must_start_with_the_issuer(ec_hierarchy: Any) -> None:
    with pytest.raises(ValueError, match="start with the issuer"):
        LocalIssuer(ec_hierarchy.intermediate, [], ec_hierarchy.intermediate_key, DEFAULT_PROFILES)


def test_chain_must_not_contain_the_root(ec_hierarchy: Any) -> None:
    with pytest.raises(ValueError, match="root"):
        LocalIssuer(
            ec_hierarchy.intermediate,
            [ec_hierarchy.intermediate, ec_hierarchy.root],
            ec_hierarchy.intermediate_key,
            DEFAULT_PROFILES,
        )


def test_chain_must_link_up(ec_hierarchy: Any) -> None:
    sibling = sibling_intermediate(ec_hierarchy)
    with pytest.raises(ValueError, match="link up"):
        LocalIssuer(
            ec_hierarchy.intermediate,
            [ec_hierarchy.intermediate, sibling],
            ec_hierarchy.intermediate_key,
            DEFAULT_PROFILES,
        )


def _spki(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- name constraints (RFC 5280 §4.2.1.10) ---


@pytest.fixture(scope="module")
def constrained(ec_hierarchy: Any) -> Any:
    """An intermediate limited to example.com and 192.0.2.0/24."""
    key = generate_private_key(KeyAlgorithm.EC_P256)
    cert = create_intermediate(
        ec_hierarchy.root,
        ec_hierarchy.root_key,
        key.public_key(),
        "Constrained CA",
        "certplane",
        timedelta(days=365),
        permitted_dns_names=["example.com"],
        permitted_ip_networks=[ipaddress.ip_network("192.0.2.0/24")],
    )
    return Hierarchy(ec_hierarchy.root, ec_hierarchy.root_key, cert, key)


async def test_constrained_issuer_signs_inside_its_subtrees(
    constrained: Any, make_request: MakeRequest, openssl_verify: Callable[..., Any]
) -> None:
    issuer = LocalIssuer(constrained.intermediate, [constrained.intermediate],
                         constrained.intermediate_key, DEFAULT_PROFILES)  # fmt: skip
    req = make_request(
        dns_names=("example.com", "www.example.com", "*.api.example.com"),
        ip_addresses=(ipaddress.ip_address("192.0.2.10"),),
    )
    issued = await issuer.issue(req)
    result = openssl_verify(constrained.root, [constrained.intermediate], issued.certificate_pem)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("dns", "ips"),
    [
        (("www.example.org",), ()),
        (("badexample.com",), ()),
        (("www.example.com",), ("198.51.100.1",)),
        (("www.example.com",), ("2001:db8::1",)),
    ],
)
async def test_constrained_issuer_refuses_names_outside(
    constrained: Any, make_request: MakeRequest, dns: tuple[str, ...], ips: tuple[str, ...]
) -> None:
    """Even a misused constrained intermediate signs nothing a relying party would reject."""
    issuer = LocalIssuer(constrained.intermediate, [constrained.intermediate],
                         constrained.intermediate_key, DEFAULT_PROFILES)  # fmt: skip
    req = make_request(dns_names=dns, ip_addresses=tuple(ipaddress.ip_address(a) for a in ips))
    with pytest.raises(IssuanceRefused, match="name constraints"):
        await issuer.issue(req)


def test_openssl_rejects_a_leaf_outside_the_constraints(
    constrained: Any, openssl_verify: Callable[..., Any]
) -> None:
    """The constraint binds relying parties too: a leaf signed around the check fails."""
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.org")]))
        .issuer_name(constrained.intermediate.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("www.example.org")]), critical=False
        )
        .sign(constrained.intermediate_key, hashes.SHA256())
    )
    result = openssl_verify(constrained.root, [constrained.intermediate], leaf)
    assert result.returncode != 0
    assert "permitted subtree violation" in result.stdout + result.stderr


def _ca_with_constraints(
    signer: Any, signer_key: Any, constraints: x509.NameConstraints, name: str
) -> Hierarchy:
    """A CA (pathLen 1) under ``signer`` with exactly these name constraints."""
    key = generate_private_key(KeyAlgorithm.EC_P256)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(signer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=300))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(constraints, critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    return Hierarchy(None, None, cert, key)  # type: ignore[arg-type]


EXCLUDE_BAD = x509.NameConstraints(
    permitted_subtrees=None, excluded_subtrees=[x509.DNSName("bad.example.com")]
)
ONLY_BELOW = x509.NameConstraints(
    permitted_subtrees=[x509.DNSName(".example.com")], excluded_subtrees=None
)


@pytest.mark.parametrize(
    ("constraints", "name", "allowed"),
    [
        (EXCLUDE_BAD, "*.example.com", False),  # covers bad.example.com
        (EXCLUDE_BAD, "bad.example.com", False),
        (EXCLUDE_BAD, "x.bad.example.com", False),
        (EXCLUDE_BAD, "*.api.example.com", True),  # covers x.api.example.com only
        (EXCLUDE_BAD, "good.example.com", True),
        (ONLY_BELOW, "*.example.com", True),  # every name it covers is below example.com
        (ONLY_BELOW, "www.example.com", True),
        (ONLY_BELOW, "example.com", False),  # a leading dot permits names below only
    ],
)
async def test_wildcards_meet_constraints_name_by_name(
    ec_hierarchy: Any, make_request: MakeRequest, constraints: Any, name: str, allowed: bool
) -> None:
    ca = _ca_with_constraints(ec_hierarchy.root, ec_hierarchy.root_key, constraints, "NC CA")
    issuer = LocalIssuer(ca.intermediate, [ca.intermediate], ca.intermediate_key, DEFAULT_PROFILES)
    req = make_request(dns_names=(name,), ip_addresses=())
    if allowed:
        await issuer.issue(req)
    else:
        with pytest.raises(IssuanceRefused, match="name constraints"):
            await issuer.issue(req)


async def test_constraints_of_every_ca_above_bind_the_leaf(
    ec_hierarchy: Any, make_request: MakeRequest
) -> None:
    """An unconstrained issuer under a constrained CA (a customer's chain) refuses too."""
    mid = _ca_with_constraints(ec_hierarchy.root, ec_hierarchy.root_key, EXCLUDE_BAD, "Mid CA")
    other = x509.NameConstraints(None, [x509.DNSName("x.test")])
    low = _ca_with_constraints(mid.intermediate, mid.intermediate_key, other, "Low CA")
    issuer = LocalIssuer(low.intermediate, [low.intermediate, mid.intermediate],
                         low.intermediate_key, DEFAULT_PROFILES)  # fmt: skip
    with pytest.raises(IssuanceRefused, match="name constraints"):
        await issuer.issue(make_request(dns_names=("bad.example.com",), ip_addresses=()))
    await issuer.issue(make_request(dns_names=("fine.example.com",), ip_addresses=()))
