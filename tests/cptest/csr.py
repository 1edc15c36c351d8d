"""CSRs built byte by byte for finalize tests."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def csr_der(
    names: list[str],
    key=None,
    *,
    cn: str | None = None,
    ips: tuple[str, ...] = (),
    extra_sans: tuple[x509.GeneralName, ...] = (),
) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    general = [x509.DNSName(n) for n in names]
    general += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    general += list(extra_sans)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
