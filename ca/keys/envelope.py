"""Envelope encryption under the platform master key.

Every secret certplane keeps at rest (CA private keys, EAB HMAC keys, ...) is sealed here. A fresh
256-bit data key encrypts the plaintext with AES-256-GCM (NIST SP 800-38D) and the master key wraps
that data key with AES-256-GCM. Both encryptions authenticate the caller's *context*, so a blob
sealed for one owner or purpose cannot be opened for another.

Blob layout, version 1 (every field has a fixed length except the ciphertext)::

    offset size  field
    0      3     magic b"CPE"
    3      1     version (1)
    4      8     master key id  = SHA-256(master key)[:8]
    12     8     context id     = SHA-256(context)[:8]
    20     12    wrap nonce
    32     48    wrapped data key (32 bytes + 16-byte GCM tag)
    80     12    data nonce
    92     16..  ciphertext + 16-byte GCM tag

The wrap AAD is the 20-byte header followed by the context, so magic, version, key id and context
are authenticated under the master key; the data AAD is the context. The two ids are public
fingerprints that let `open_sealed` say *why* a blob does not open (another master key, another
context) and let a key-rotation job find the master key a blob needs (`sealed_key_id`).

NOTE(pki): nonces are random; with 96-bit nonces one master key may wrap up to 2**32 data keys
(SP 800-38D §8.3) before it must be rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ContextMismatchError, KeystoreError, MasterKeyError

__all__ = [
    "MASTER_KEY_BYTES",
    "MasterKey",
    "open_sealed",
    "seal",
    "sealed_key_id",
]

MASTER_KEY_BYTES = 32
_KEY_ID_BYTES = 8
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAGIC = b"CPE"
_VERSION = 1
_WRAPPED_KEY_BYTES = 32 + _TAG_BYTES
_HEADER_BYTES = len(_MAGIC) + 1 + 2 * _KEY_ID_BYTES
_MIN_BLOB_BYTES = _HEADER_BYTES + 2 * _NONCE_BYTES + _WRAPPED_KEY_BYTES + _TAG_BYTES
_MAX_KEY_FILE_BYTES = 4096
_GROUP_OTHER_BITS = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True, eq=False)
class MasterKey:
    """The platform master key: 32 random bytes that wrap every data key.

    Load it with `from_file` or `from_env`; create one with `generate`. `repr()` shows only the
    key id, never the key.
    """

    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != MASTER_KEY_BYTES:
            raise MasterKeyError(f"a master key is exactly {MASTER_KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id.hex()})"

    @property
    def key_id(self) -> bytes:
        """The first 8 bytes of SHA-256 of the key: a public fingerprint stored in every blob."""
        return hashlib.sha256(self.material).digest()[:_KEY_ID_BYTES]

    @classmethod
    def generate(cls) -> MasterKey:
        """A new key from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(MASTER_KEY_BYTES))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MasterKey:
        """Read base64 of 32 bytes (whitespace ignored) from a file only its owner can access.

        Raises:
            MasterKeyError: the file is missing, not a regular file, accessible by group or
                others (any bit of 0o077), or does not hold base64 of exactly 32 bytes.
        """
        text = _read_private_file(Path(path))
        return cls(_decode_base64_key(text, source=f"master key file {os.fspath(path)}"))

    @classmethod
    def from_env(cls, var_name: str) -> MasterKey:
        """Read base64 of 32 bytes from the environment variable `var_name`.

        Raises:
            MasterKeyError: the variable is unset, empty or malformed.
        """
        value = os.environ.get(var_name, "")
        if not value.strip():
            raise MasterKeyError(f"environment variable {var_name} is not set")
        return cls(_decode_base64_key(value.encode(), source=f"environment variable {var_name}"))

    def write_master_key_file(
        self, path: str | os.PathLike[str], *, overwrite: bool = False
    ) -> None:
        """Write the key as base64 to `path`, mode 0600, atomically and durably.

        A temporary file in the same directory is written and fsync'ed, then moved into place
        (`os.replace` when `overwrite`, otherwise a hard link that fails if `path` exists, so a
        key that protects existing data is never clobbered by accident); the directory is
        fsync'ed last.

        Raises:
            MasterKeyError: `path` exists and `overwrite` is false.
        """
        target = Path(path)
        encoded = base64.b64encode(self.material) + b"\n"
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            _write_synced(fd, encoded)
            _move_into_place(Path(tmp_name), target, overwrite=overwrite)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        _fsync_directory(target.parent)


def _read_private_file(path: Path) -> bytes:
    """Open `path` and check its mode on the open descriptor (no check-then-open race)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise MasterKeyError(f"cannot open master key file {path}: {exc.strerror}") from None
    try:
        _check_private(path, os.fstat(fd))
        return os.read(fd, _MAX_KEY_FILE_BYTES)
    finally:
        os.close(fd)


def _check_private(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise MasterKeyError(f"master key file {path} is not a regular file")
    if info.st_mode & _GROUP_OTHER_BITS:
        raise MasterKeyError(
            f"master key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); restrict it with chmod 600"
        )


def _decode_base64_key(text: bytes, *, source: str) -> bytes:
    """Decode standard base64 with all whitespace removed; exactly 32 bytes are accepted."""
    compact = b"".join(text.split())
    try:
        material = base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise MasterKeyError(f"{source} is not valid base64") from None
    if len(material) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"{source} must hold base64 of exactly {MASTER_KEY_BYTES} bytes")
    return material


def _write_synced(fd: int, data: bytes) -> None:
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _move_into_place(tmp: Path, target: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise MasterKeyError(f"master key file {target} already exists; not overwriting") from None


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Sealed(NamedTuple):
    """A parsed version-1 blob (see the module docstring for the layout)."""

    header: bytes
    key_id: bytes
    context_id: bytes
    wrap_nonce: bytes
    wrapped_key: bytes
    data_nonce: bytes
    ciphertext: bytes


def _context_id(context: bytes) -> bytes:
    return hashlib.sha256(context).digest()[:_KEY_ID_BYTES]


def _header(master: MasterKey, context: bytes) -> bytes:
    return _MAGIC + bytes([_VERSION]) + master.key_id + _context_id(context)


def seal(master: MasterKey, plaintext: bytes, *, context: bytes) -> bytes:
    """Encrypt `plaintext` under a fresh data key wrapped by `master`, bound to `context`.

    `context` names the owner and purpose (e.g. b"certplane-key:tenant:<id>"); the same context
    must be given to `open_sealed`. It is authenticated, not secret.

    Raises:
        ValueError: `context` is empty (a forgotten context would silently weaken the binding).
    """
    if not context:
        raise ValueError("seal() needs a non-empty context")
    data_key = AESGCM.generate_key(bit_length=256)
    header = _header(master, context)
    wrap_nonce, data_nonce = os.urandom(_NONCE_BYTES), os.urandom(_NONCE_BYTES)
    wrapped_key = AESGCM(master.material).encrypt(wrap_nonce, data_key, header + context)
    ciphertext = AESGCM(data_key).encrypt(data_nonce, plaintext, context)
    return header + wrap_nonce + wrapped_key + data_nonce + ciphertext


def open_sealed(master: MasterKey, blob: bytes, *, context: bytes) -> bytes:
    """Decrypt a blob made by `seal`.

    Raises:
        KeystoreError: unknown format or version, truncated, sealed under another master key,
            or failed authentication (tampering).
        ContextMismatchError: sealed under another context (a `KeystoreError`).
    """
    sealed = _parse(blob)
    if sealed.key_id != master.key_id:
        raise KeystoreError(
            f"sealed blob needs master key {sealed.key_id.hex()}, not {master.key_id.hex()}"
        )
    if sealed.context_id != _context_id(context):
        raise ContextMismatchError("sealed blob was sealed under another context")
    wrap_aad = sealed.header + context
    data_key = _decrypt(master.material, sealed.wrap_nonce, sealed.wrapped_key, wrap_aad)
    return _decrypt(data_key, sealed.data_nonce, sealed.ciphertext, context)


def sealed_key_id(blob: bytes) -> bytes:
    """The id of the master key `blob` was sealed under (for key rotation); not authenticated.

    Raises:
        KeystoreError: `blob` is not a well-formed sealed blob.
    """
    return _parse(blob).key_id


def _parse(blob: bytes) -> _Sealed:
    if len(blob) < len(_MAGIC) + 1:
        raise KeystoreError("sealed blob is truncated")
    if blob[: len(_MAGIC)] != _MAGIC:
        raise KeystoreError("not a certplane sealed blob")
    if blob[len(_MAGIC)] != _VERSION:
        raise KeystoreError(f"unsupported sealed blob version {blob[len(_MAGIC)]}")
    if len(blob) < _MIN_BLOB_BYTES:
        raise KeystoreError("sealed blob is truncated")
    return _split_v1(bytes(blob))


def _split_v1(blob: bytes) -> _Sealed:
    key_id_at = len(_MAGIC) + 1
    context_id_at = key_id_at + _KEY_ID_BYTES
    wrap_nonce_at = context_id_at + _KEY_ID_BYTES
    wrapped_at = wrap_nonce_at + _NONCE_BYTES
    data_nonce_at = wrapped_at + _WRAPPED_KEY_BYTES
    ciphertext_at = data_nonce_at + _NONCE_BYTES
    return _Sealed(
        header=blob[:wrap_nonce_at],
        key_id=blob[key_id_at:context_id_at],
        context_id=blob[context_id_at:wrap_nonce_at],
        wrap_nonce=blob[wrap_nonce_at:wrapped_at],
        wrapped_key=blob[wrapped_at:data_nonce_at],
        data_nonce=blob[data_nonce_at:ciphertext_at],
        ciphertext=blob[ciphertext_at:],
    )


def _decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise KeystoreError("sealed blob failed authentication (tampered or corrupted)") from None
