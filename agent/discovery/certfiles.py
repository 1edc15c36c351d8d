"""Certificates in files: PEM (one certificate or a bundle) and DER, and scans of configured roots.

A file never makes discovery fail: whatever cannot be read or parsed becomes a
:class:`~certplane.agent.discovery.model.SkippedFile` with a reason from
:class:`~certplane.agent.discovery.model.SkipReason`. Private keys found beside certificates are
neither parsed nor recorded.
"""

from __future__ import annotations

import binascii
import os
import re
from base64 import b64decode
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from certplane.agent.discovery.hostfs import (
    FileTooLargeError,
    HostRoot,
    NotRegularFileError,
    errno_name,
)
from certplane.agent.discovery.model import (
    CertificateInfo,
    FoundCertificate,
    SkippedFile,
    SkipReason,
)

MAX_FILE_SIZE = 1024 * 1024
MAX_FILES = 10_000
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_CERTIFICATE_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE")
_NIST_CURVES = {
    "secp192r1": "p192",
    "secp224r1": "p224",
    "secp256r1": "p256",
    "secp384r1": "p384",
    "secp521r1": "p521",
}
_KEY_TYPE = re.compile(r"(rsa|dsa|ec-p)-?(\d+)")
_MIN_BITS = {"rsa": 2048, "dsa": 2048, "ec-p": 256}


@dataclass(frozen=True)
class CertificateFileScan:
    """Certificates found and files (or PEM blocks) skipped, in the order they were met."""

    found: tuple[FoundCertificate, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()

    def __add__(self, other: CertificateFileScan) -> CertificateFileScan:
        return CertificateFileScan(self.found + other.found, self.skipped + other.skipped)


def describe_certificate(cert: x509.Certificate) -> CertificateInfo:
    """Everything discovery records about ``cert``.

    Raises ValueError when an extension it reads (SAN, basic constraints) is malformed.
    """
    return CertificateInfo(
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        dns_names=_dns_names(cert),
        ip_addresses=_ip_addresses(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=_key_type_of(cert),
        serial=serial_hex(cert.serial_number),
        self_signed=_self_signed(cert),
        is_ca=_is_ca(cert),
    )


def describe_der(der: bytes) -> CertificateInfo:
    """:func:`describe_certificate` for DER bytes; raises ValueError when they are not one."""
    return describe_certificate(x509.load_der_x509_certificate(der))


def key_type(public_key: object) -> str:
    """A short name for a public key: ``ec-p256``, ``rsa-2048``, ``ed25519``, ``dsa-1024``…"""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        name = public_key.curve.name
        return f"ec-{_NIST_CURVES.get(name, name)}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"dsa-{public_key.key_size}"
    return "unknown"


def weak_key_reason(key_type_name: str) -> str | None:
    """Why a key of this :func:`key_type` is weak, or None: RSA and DSA below 2048 bits, EC below
    256 bits. Other curves and EdDSA are not judged weak."""
    match = _KEY_TYPE.fullmatch(key_type_name)
    if match is None:
        return None
    family, bits = match.group(1), int(match.group(2))
    if bits >= _MIN_BITS[family]:
        return None
    return f"{key_type_name}: below {_MIN_BITS[family]} bits"


def serial_hex(serial: int) -> str:
    """A serial number as lowercase hex with an even number of digits."""
    digits = format(abs(serial), "x")
    digits = "0" * (len(digits) % 2) + digits
    return "-" + digits if serial < 0 else digits


def parse_certificate_bytes(path: str, data: bytes) -> CertificateFileScan:
    """The certificates in ``data`` (PEM, PEM bundle or DER) read from ``path``."""
    if b"-----BEGIN " in data:
        return _parse_pem(path, data)
    try:
        info = describe_der(data)
    except ValueError:
        return _skip(path, SkipReason.NOT_A_CERTIFICATE, detail="neither PEM nor DER")
    return CertificateFileScan(found=(FoundCertificate(path, 0, info),))


def read_certificate_file(
    host: HostRoot, path: str, max_file_size: int = MAX_FILE_SIZE
) -> CertificateFileScan:
    """The certificates in host file ``path``; a file that cannot be read is skipped."""
    try:
        data = host.read_bytes(path, max_file_size)
    except FileNotFoundError:
        return _skip(path, SkipReason.MISSING)
    except NotRegularFileError:
        return _skip(path, SkipReason.NOT_A_REGULAR_FILE)
    except FileTooLargeError as exc:
        return _skip(path, SkipReason.TOO_LARGE, detail=str(exc))
    except OSError as exc:
        return _skip(path, SkipReason.UNREADABLE, detail=errno_name(exc))
    return parse_certificate_bytes(path, data)


def scan_certificate_files(
    host: HostRoot,
    roots: Sequence[str],
    *,
    max_file_size: int = MAX_FILE_SIZE,
    max_files: int = MAX_FILES,
) -> CertificateFileScan:
    """Every certificate in the files below ``roots`` (host paths of files or directories).

    Directories are walked in sorted order. Symlinked files are read only when their target lies
    inside one of the roots; symlinked directories are not descended (a target inside the roots
    is scanned there). After ``max_files`` files the scan stops with a ``file-limit`` entry.
    """
    allowed = [host.real(root).resolve() for root in roots]
    scan = CertificateFileScan()
    seen: set[str] = set()
    for root in roots:
        if not host.real(root).exists():
            scan += _skip(root, SkipReason.MISSING)
            continue
        for path in _files_below(host, root):
            if path in seen:
                continue
            if len(seen) >= max_files:
                detail = f"stopped after {max_files} files"
                return scan + _skip(root, SkipReason.FILE_LIMIT, detail=detail)
            seen.add(path)
            scan += _scan_one(host, path, allowed, max_file_size)
    return scan


def _scan_one(
    host: HostRoot, path: str, allowed: list[Path], max_file_size: int
) -> CertificateFileScan:
    """One entry met during a scan; symlinks must stay inside the scanned roots. A symlinked
    directory inside them is not descended: its target is scanned where it lives."""
    real = host.real(path)
    if real.is_symlink():
        target = Path(os.path.realpath(real))
        if not any(target.is_relative_to(root) for root in allowed):
            return _skip(path, SkipReason.SYMLINK_OUTSIDE_ROOTS)
        if target.is_dir():
            return CertificateFileScan()
    return read_certificate_file(host, path, max_file_size)


def _files_below(host: HostRoot, root: str) -> Iterator[str]:
    """Host paths of the files at or below ``root`` in sorted walk order, and of the symlinks
    to directories, which ``os.walk`` lists among directories but does not descend."""
    real = host.real(root)
    if not real.is_dir():
        yield root
        return
    for top, dirs, files in os.walk(real):
        dirs.sort()
        linked = [name for name in dirs if Path(top, name).is_symlink()]
        for name in sorted(files + linked):
            yield host.host(Path(top, name))


def _parse_pem(path: str, data: bytes) -> CertificateFileScan:
    """The certificate blocks of a PEM file; other blocks (keys, parameters) are ignored."""
    blocks = [m.group(2) for m in _PEM_BLOCK.finditer(data) if m.group(1) in _CERTIFICATE_LABELS]
    if not blocks:
        return _skip(path, SkipReason.NO_CERTIFICATE, detail="no CERTIFICATE block")
    scan = CertificateFileScan()
    for index, body in enumerate(blocks):
        scan += _parse_pem_block(path, index, body)
    return scan


def _parse_pem_block(path: str, index: int, body: bytes) -> CertificateFileScan:
    """One ``CERTIFICATE`` block: base64 of a DER certificate."""
    try:
        der = b64decode(b"".join(body.split()), validate=True)
    except binascii.Error:
        return _skip(path, SkipReason.BAD_CERTIFICATE, index=index, detail="invalid base64")
    try:
        info = describe_der(der)
    except ValueError:
        return _skip(path, SkipReason.BAD_CERTIFICATE, index=index, detail="invalid DER")
    return CertificateFileScan(found=(FoundCertificate(path, index, info),))


def _skip(
    path: str, reason: str, *, index: int | None = None, detail: str = ""
) -> CertificateFileScan:
    return CertificateFileScan(skipped=(SkippedFile(path, reason, index, detail),))


def _subject_alt_name(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    san = _subject_alt_name(cert)
    return tuple(san.get_values_for_type(x509.DNSName)) if san else ()


def _ip_addresses(cert: x509.Certificate) -> tuple[str, ...]:
    san = _subject_alt_name(cert)
    return tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)) if san else ()


def _key_type_of(cert: x509.Certificate) -> str:
    try:
        return key_type(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return "unknown"


def _self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca
