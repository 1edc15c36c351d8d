"""Envelope encryption: round trip, tamper detection, context and master-key binding, key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certplane.ca.keys.envelope import MasterKey, open_sealed, seal, sealed_key_id
from certplane.ca.keys.errors import ContextMismatchError, KeystoreError, MasterKeyError

CONTEXT = b"certplane-test:tenant:a"
PLAINTEXT = b"-----secret EAB HMAC key or PKCS#8-----"

# The version-1 layout, as documented in certplane.ca.keys.envelope.
REGIONS = {
    "magic": (0, 3),
    "version": (3, 4),
    "key_id": (4, 12),
    "context_id": (12, 20),
    "wrap_nonce": (20, 32),
    "wrapped_key": (32, 80),
    "data_nonce": (80, 92),
    "ciphertext": (92, None),
}


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]


def _secret_forms(master: MasterKey) -> list[str]:
    material = master.material
    return [
        material.hex(),
        base64.b64encode(material).decode(),
        base64.urlsafe_b64encode(material).decode().rstrip("="),
        repr(material)[2:-1],
    ]


@given(plaintext=st.binary(max_size=4096), context=st.binary(min_size=1, max_size=256))
def test_round_trip(plaintext: bytes, context: bytes) -> None:
    master = MasterKey.generate()
    assert open_sealed(master, seal(master, plaintext, context=context), context=context) == (
        plaintext
    )


def test_seal_is_randomised_and_labelled(master: MasterKey) -> None:
    first, second = (
        seal(master, PLAINTEXT, context=CONTEXT),
        seal(master, PLAINTEXT, context=CONTEXT),
    )
    assert first != second
    assert first[:4] == b"CPE\x01"
    assert first[4:12] == master.key_id == sealed_key_id(first)
    assert len(first) == 92 + len(PLAINTEXT) + 16
    assert PLAINTEXT not in first


@pytest.mark.parametrize("region", REGIONS)
def test_every_flipped_byte_is_detected(master: MasterKey, region: str) -> None:
    blob = seal(master, PLAINTEXT, context=CONTEXT)
    start, end = REGIONS[region]
    for index in range(start, len(blob) if end is None else end):
        with pytest.raises(KeystoreError):
            open_sealed(master, _flip(blob, index), context=CONTEXT)


def test_every_truncation_and_extension_is_detected(master: MasterKey) -> None:
    blob = seal(master, PLAINTEXT, context=CONTEXT)
    for length in range(len(blob)):
        with pytest.raises(KeystoreError):
            open_sealed(master, blob[:length], context=CONTEXT)
    with pytest.raises(KeystoreError):
        open_sealed(master, blob + b"\x00", context=CONTEXT)


def test_truncated_blob_says_so(master: MasterKey) -> None:
    blob = seal(master, PLAINTEXT, context=CONTEXT)
    with pytest.raises(KeystoreError, match="truncated"):
        open_sealed(master, blob[:50], context=CONTEXT)


def test_unknown_version_is_refused(master: MasterKey) -> None:
    blob = bytearray(seal(master, PLAINTEXT, context=CONTEXT))
    blob[3] = 2
    with pytest.raises(KeystoreError, match="unsupported sealed blob version 2"):
        open_sealed(master, bytes(blob), context=CONTEXT)


def test_foreign_data_is_refused(master: MasterKey) -> None:
    with pytest.raises(KeystoreError, match="not a certplane sealed blob"):
        open_sealed(master, b"\x30\x82" + bytes(200), context=CONTEXT)


def test_wrong_context_is_refused(master: MasterKey) -> None:
    blob = seal(master, PLAINTEXT, context=b"certplane-key:tenant:a")
    with pytest.raises(ContextMismatchError):
        open_sealed(master, blob, context=b"certplane-key:tenant:b")
    with pytest.raises(ContextMismatchError):
        open_sealed(master, blob, context=b"certplane-key:tenant:a\x00")


def test_forged_context_id_still_fails_authentication(master: MasterKey) -> None:
    """Rewriting the public context id to match another context does not open the blob."""
    blob = seal(master, PLAINTEXT, context=b"ctx-a")
    forged_header = seal(master, b"", context=b"ctx-b")[:20]
    with pytest.raises(KeystoreError, match="failed authentication"):
        open_sealed(master, forged_header + blob[20:], context=b"ctx-b")


def test_wrong_master_key_is_refused(master: MasterKey) -> None:
    other = MasterKey.generate()
    blob = seal(master, PLAINTEXT, context=CONTEXT)
    with pytest.raises(KeystoreError, match="master key") as caught:
        open_sealed(other, blob, context=CONTEXT)
    assert not isinstance(caught.value, ContextMismatchError)
    message = str(caught.value)
    for secret in [*_secret_forms(master), *_secret_forms(other)]:
        assert secret not in message


def test_errors_never_contain_the_plaintext(master: MasterKey) -> None:
    blob = seal(master, PLAINTEXT, context=CONTEXT)
    for index in range(len(blob)):
        with pytest.raises(KeystoreError) as caught:
            open_sealed(master, _flip(blob, index), context=CONTEXT)
        assert PLAINTEXT.decode() not in str(caught.value)


def test_empty_context_is_a_programming_error(master: MasterKey) -> None:
    with pytest.raises(ValueError, match="context"):
        seal(master, PLAINTEXT, context=b"")


def test_repr_and_str_do_not_leak_the_key(master: MasterKey) -> None:
    for shown in (repr(master), str(master), f"{master}", repr([master])):
        assert master.key_id.hex() in shown
        for secret in _secret_forms(master):
            assert secret not in shown


def test_key_id_is_a_sha256_prefix(master: MasterKey) -> None:
    import hashlib

    assert master.key_id == hashlib.sha256(master.material).digest()[:8]


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_master_key_must_be_32_bytes(length: int) -> None:
    with pytest.raises(MasterKeyError, match="32 bytes"):
        MasterKey(os.urandom(length))


# --- key files and environment ---


def _key_file(path: Path, content: bytes, mode: int) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_write_then_read_key_file(master: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master.write_master_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert MasterKey.from_file(path).material == master.material
    assert os.listdir(tmp_path) == ["master.key"]


def test_write_refuses_to_clobber_an_existing_key(master: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master.write_master_key_file(path)
    with pytest.raises(MasterKeyError, match="already exists"):
        MasterKey.generate().write_master_key_file(path)
    assert MasterKey.from_file(path).material == master.material
    assert os.listdir(tmp_path) == ["master.key"]


def test_write_with_overwrite_replaces(master: MasterKey, tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master.write_master_key_file(path)
    replacement = MasterKey.generate()
    replacement.write_master_key_file(path, overwrite=True)
    assert MasterKey.from_file(path).material == replacement.material
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["master.key"]


def test_key_file_tolerates_whitespace(master: MasterKey, tmp_path: Path) -> None:
    encoded = base64.b64encode(master.material)
    content = b"  " + encoded[:10] + b"\n\t" + encoded[10:30] + b" \r\n" + encoded[30:] + b"\n\n"
    path = _key_file(tmp_path / "k", content, 0o600)
    assert MasterKey.from_file(path).material == master.material


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620, 0o602, 0o610, 0o601])
def test_key_file_accessible_by_others_is_refused(
    master: MasterKey, tmp_path: Path, mode: int
) -> None:
    path = _key_file(tmp_path / "k", base64.b64encode(master.material), mode)
    with pytest.raises(MasterKeyError, match="group or others") as caught:
        MasterKey.from_file(path)
    assert str(path) in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(master: MasterKey, tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path / "k", base64.b64encode(master.material), mode)
    assert MasterKey.from_file(path).material == master.material


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not base64 at all!", "not valid base64"),
        (base64.b64encode(bytes(16)), "exactly 32 bytes"),
        (base64.b64encode(bytes(48)), "exactly 32 bytes"),
        (b"", "exactly 32 bytes"),
    ],
)
def test_malformed_key_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = _key_file(tmp_path / "k", content, 0o600)
    with pytest.raises(MasterKeyError, match=message):
        MasterKey.from_file(path)


def test_missing_key_file_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="cannot open"):
        MasterKey.from_file(tmp_path / "absent")
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(MasterKeyError, match="not a regular file"):
        MasterKey.from_file(directory)


def test_key_from_environment(master: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTPLANE_TEST_MASTER_KEY", base64.b64encode(master.material).decode())
    assert MasterKey.from_env("CERTPLANE_TEST_MASTER_KEY").material == master.material


def test_missing_or_bad_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTPLANE_TEST_MASTER_KEY", raising=False)
    with pytest.raises(MasterKeyError, match="CERTPLANE_TEST_MASTER_KEY is not set"):
        MasterKey.from_env("CERTPLANE_TEST_MASTER_KEY")
    monkeypatch.setenv("CERTPLANE_TEST_MASTER_KEY", "c2hvcnQ=")
    with pytest.raises(MasterKeyError, match="exactly 32 bytes"):
        MasterKey.from_env("CERTPLANE_TEST_MASTER_KEY")
