"""`Pkcs11KeyStore`: CA keys generated and used inside PKCS#11 tokens (PKCS#11 v2.40).

The same code drives SoftHSM2 in tests and a network HSM or a cloud KMS's PKCS#11 library in
production; only ``keystore.pkcs11.module`` changes.

- Keys are generated in the token, ``CKA_SENSITIVE`` and not ``CKA_EXTRACTABLE``, and are named
  by RFC 7512 refs: ``pkcs11:token=<label>;object=<label>;id=<id>;type=private``. The module path
  and PIN are configuration, never part of a ref.
- PINs come from a pin source (``file:/path`` or ``env:NAME``, ``{token}`` replaced by the token
  label). A `Pin` never prints its value.
- Ownership lives in the token, where a database edit cannot reach it: every key's ``CKA_LABEL``
  is ``certplane/<binding>/<id hex>`` and cannot be modified; a token dedicated to one owner holds
  a ``certplane/owner`` data object. `load` checks both against the caller's binding and each
  session's first use of a key checks its label again, so one tenant's issuance can never sign
  with another's key. The shared token (``tokens[0]``) is never claimed by one owner.
- Every call goes through a bounded session pool per token, under one lock per loaded module:
  python-pkcs11 initialises modules without ``CKF_OS_LOCKING_OK``, and SoftHSM2 then does no
  locking of its own. A lost session or token (``CKR_SESSION_HANDLE_INVALID``,
  ``CKR_DEVICE_REMOVED``, a token that disappears) makes the pool reinitialise the module and log
  in again, at most once per call and then with exponential backoff; meanwhile calls fail fast
  with `KeystoreUnavailable`, which callers retry.
- Every signature the token returns is verified with the public key before it is returned.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pkcs11
from asn1crypto.core import OctetString
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_named_curve_parameters

from .api import KeyAlgorithm, KeyStore, PublicKey, SigningKey, StoredKey, check_binding
from .errors import KeyBindingError, KeystoreError, KeystoreUnavailable
from .pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

__all__ = [
    "KeystoreUnavailable",
    "Pin",
    "Pkcs11KeyStore",
    "Pkcs11Settings",
    "read_pin",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

OWNER_LABEL = "certplane/owner"
_APPLICATION = "certplane"
_CURVE_NAMES: Mapping[KeyAlgorithm, str] = {
    KeyAlgorithm.EC_P256: "secp256r1",
    KeyAlgorithm.EC_P384: "secp384r1",
}
_CURVES: Mapping[str, ec.EllipticCurve] = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}
_RSA_BITS: Mapping[KeyAlgorithm, int] = {
    KeyAlgorithm.RSA_2048: 2048,
    KeyAlgorithm.RSA_3072: 3072,
    KeyAlgorithm.RSA_4096: 4096,
}
_RSA_PKCS1 = {"sha256": Mechanism.SHA256_RSA_PKCS, "sha384": Mechanism.SHA384_RSA_PKCS,
              "sha512": Mechanism.SHA512_RSA_PKCS}  # fmt: skip
# A session or token that went away: reconnect and try again (PKCS#11 v2.40 §5.1, §11.1).
_LOST = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.DeviceMemory,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
    p11.NoSuchToken,
    p11.GeneralError,
)
_BAD_PIN = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinLocked, p11.PinExpired)


class KeyNotInToken(KeystoreError):
    """The token holds no private key with the ref's id."""


# --- PINs -------------------------------------------------------------------------------------


class Pin:
    """A token PIN; its value never appears in ``repr``, ``str`` or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Pin(<redacted>)"

    __str__ = __repr__


def read_pin(source: str, token: str, environ: Mapping[str, str] | None = None) -> Pin:
    """Read the PIN of ``token`` from ``source``: ``file:/path`` or ``env:NAME``.

    ``{token}`` in the source is replaced by the token label, so one setting serves every token.

    Raises:
        KeystoreError: unknown scheme, missing file or variable, or an empty PIN (the message
            names the source, never the PIN).
    """
    where = source.replace("{token}", token)
    scheme, _, rest = where.partition(":")
    if scheme == "file" and rest:
        try:
            value = Path(rest).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KeystoreError(f"PIN source {where}: {exc.strerror or 'unreadable'}") from None
    elif scheme == "env" and rest:
        value = (os.environ if environ is None else environ).get(rest, "")
    else:
        raise KeystoreError(f"PIN source {source!r}: expected 'file:/path' or 'env:NAME'")
    if not value:
        raise KeystoreError(f"PIN source {where}: empty")
    return Pin(value)


# --- module, token sessions -----------------------------------------------------------------


class _Module:
    """One loaded PKCS#11 library: a lock around every call, and a generation that changes on
    each reinitialisation (every session of an older generation is gone)."""

    _loaded: dict[str, _Module] = {}
    _loaded_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.generation = 0
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pkcs11")
        try:
            self.lib = pkcs11.lib(path)
        except (OSError, RuntimeError) as exc:
            raise KeystoreError(f"cannot load PKCS#11 module {path}: {exc}") from None

    @classmethod
    def load(cls, path: str) -> _Module:
        with cls._loaded_lock:
            module = cls._loaded.get(path)
            if module is None:
                module = cls._loaded[path] = cls(path)
            return module

    def reinitialize(self, seen_generation: int) -> None:
        """C_Finalize + C_Initialize, unless someone already did since ``seen_generation``."""
        with self.lock:
            if self.generation != seen_generation:
                return
            self.generation += 1
            try:
                self.lib.reinitialize()
            except p11.PKCS11Error as exc:
                log.warning(
                    "PKCS#11 module %s: reinitialise failed: %s", self.path, type(exc).__name__
                )


@dataclass(frozen=True)
class Backoff:
    first_seconds: float = 0.2
    max_seconds: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_seconds, self.first_seconds * 2 ** max(0, failures - 1)))


class _TokenSessions:
    """A bounded pool of sessions on one token, logged in once per module generation.

    Sessions opened after the first share its login (PKCS#11 v2.40 §5.6: login is per token and
    application). ``run`` lends a session to one operation under the module lock.
    """

    def __init__(
        self, module: _Module, label: str, pin: Pin, size: int, backoff: Backoff, wait: float
    ) -> None:
        self.label = label
        self._module = module
        self.executor = module.executor
        self._pin = pin
        self._size = size
        self._backoff = backoff
        self._wait = wait
        self._cond = threading.Condition()
        self._generation = -1
        self._token: Any = None
        self._idle: list[Any] = []
        self._open = 0
        self._failures = 0
        self._retry_at = 0.0
        self._reinit_at = 0.0
        self._pin_rejected = False
        self.handles: dict[int, dict[bytes, Any]] = {}

    def run(self, operation: Callable[[Any], _T]) -> _T:
        """Run ``operation(session)``; after a lost session, one reconnect and one more try.

        A key that a live session no longer finds is either deleted or on a token that went
        away: the first time, the pool reconnects to tell them apart; if the token is back and
        the key still missing, that is a permanent error, not a retryable one.
        """
        for attempt in range(2):
            session, generation = self._borrow()
            try:
                with self._module.lock:
                    if self._module.generation != generation:
                        raise p11.SessionHandleInvalid()
                    result = operation(session)
            except (*_LOST, KeyNotInToken) as exc:
                if attempt and isinstance(exc, KeyNotInToken):
                    self._give_back(session, generation)
                    raise
                self._lost(generation, exc)
                if attempt:
                    raise KeystoreUnavailable(
                        f"token {self.label}: {type(exc).__name__}; will reconnect"
                    ) from None
                continue
            except p11.PKCS11Error as exc:
                self._give_back(session, generation)
                if type(exc) is p11.PKCS11Error:  # "not initialized" and other bare errors
                    self._lost(generation, exc)
                    raise KeystoreUnavailable(f"token {self.label}: {exc}") from None
                raise KeystoreError(f"token {self.label}: {type(exc).__name__}") from None
            except BaseException:
                self._give_back(session, generation)
                raise
            self._give_back(session, generation)
            return result
        raise AssertionError("unreachable")

    def check(self) -> None:
        """Log in now (at start), so a wrong PIN is an error before the first issuance."""
        self.run(lambda session: None)

    def _borrow(self) -> tuple[Any, int]:
        deadline = time.monotonic() + self._wait
        with self._cond:
            while True:
                if self._generation != self._module.generation:
                    self._connect()
                if self._idle:
                    return self._idle.pop(), self._generation
                if self._open < self._size:
                    session = self._open_session()
                    self._open += 1
                    return session, self._generation
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KeystoreUnavailable(f"token {self.label}: all {self._size} sessions busy")
                self._cond.wait(remaining)

    def _give_back(self, session: Any, generation: int) -> None:
        with self._cond:
            if generation == self._generation:
                self._idle.append(session)
            self._cond.notify()

    def _lost(self, generation: int, exc: BaseException) -> None:
        """Reinitialise the module (every pool of it logs in again), at most once per backoff
        step of this pool, so a token that keeps failing cannot make each call reset it."""
        log.warning("PKCS#11 token %s: %s; reconnecting", self.label, type(exc).__name__)
        now = time.monotonic()
        with self._cond:
            if now < self._reinit_at:
                self._cond.notify_all()
                return
            self._reinit_at = now + self._backoff.delay(self._failures + 1)
        self._module.reinitialize(generation)
        with self._cond:
            self._cond.notify_all()

    def _connect(self) -> None:
        """(Re)log in to the token for the module's current generation, or back off.

        A token that is not found may be one created after the module was initialised: the
        module is reinitialised and the login tried once more before backing off.
        """
        if self._pin_rejected:
            raise KeystoreError(
                f"token {self.label}: PIN rejected earlier; fix the PIN source and restart"
            )
        now = time.monotonic()
        if now < self._retry_at:
            raise KeystoreUnavailable(
                f"token {self.label} unavailable; next attempt in {self._retry_at - now:.1f} s"
            )
        self._idle.clear()
        self._open = 0
        self.handles.clear()
        for attempt in range(2):
            generation = self._module.generation
            try:
                anchor = self._login()
            except _BAD_PIN as exc:
                # Never try a rejected PIN again: HSMs lock (or wipe) a token after a few.
                self._pin_rejected = True
                raise KeystoreError(
                    f"token {self.label}: PIN rejected ({type(exc).__name__})"
                ) from None
            except p11.PKCS11Error as exc:
                self._module.reinitialize(generation)
                if attempt:
                    self._failures += 1
                    self._retry_at = time.monotonic() + self._backoff.delay(self._failures)
                    raise KeystoreUnavailable(f"token {self.label}: {type(exc).__name__}") from None
                continue
            self._idle = [anchor]
            self._open = 1
            self._failures = 0
            self._retry_at = 0.0
            self._generation = generation
            log.info("PKCS#11 token %s: logged in", self.label)
            return

    def _login(self) -> Any:
        with self._module.lock:
            self._token = self._module.lib.get_token(token_label=self.label)
            try:
                return self._token.open(user_pin=self._pin.reveal(), rw=True)
            except p11.UserAlreadyLoggedIn:  # another pool of this process shares the token
                return self._token.open(rw=True)

    def _open_session(self) -> Any:
        with self._module.lock:
            return self._token.open(rw=True)


# --- keys in the token ------------------------------------------------------------------------


def key_label(binding: str, key_id: bytes) -> str:
    """The immutable ``CKA_LABEL`` that records a key's owner inside the token."""
    return f"certplane/{binding}/{key_id.hex()}"


def _find_private_key(session: Any, key_id: bytes, label: str) -> Any:
    """The private key with ``key_id``; refused unless the token's own label is ``label``."""
    try:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
    except p11.NoSuchKey:
        raise KeyNotInToken("no such key in the token") from None
    if key[Attribute.LABEL] != label:
        raise KeyBindingError("the token records another owner for this key")
    return key


def _public_key(session: Any, key_id: bytes) -> PublicKey:
    pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=key_id)
    if pub.key_type == KeyType.EC:
        return _ec_public_key(pub[Attribute.EC_PARAMS], pub[Attribute.EC_POINT])
    exponent = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(
        exponent, int.from_bytes(pub[Attribute.MODULUS], "big")
    ).public_key()


def _ec_public_key(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    from asn1crypto.keys import ECDomainParameters

    curve = _CURVES.get(str(ECDomainParameters.load(params).chosen.native))
    if curve is None:
        raise KeystoreError("unsupported curve in the token")
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, OctetString.load(point).native)


class _TokenKey:
    """What both key classes share: where the key is, and signing through the pool."""

    def __init__(self, pool: _TokenSessions, key_id: bytes, label: str, public: PublicKey) -> None:
        self._pool = pool
        self._key_id = key_id
        self._label = label
        self._public = public

    @property
    def executor(self) -> concurrent.futures.Executor:
        """The one thread that runs this module's blocking work for async callers: every call
        is serialised by the module lock anyway, and one thread spares GIL contention."""
        return self._pool.executor

    def _sign_in_token(self, data: bytes, mechanism: Mechanism) -> bytes:
        def operation(session: Any) -> bytes:
            handles = self._pool.handles.setdefault(id(session), {})
            key = handles.get(self._key_id)
            if key is None:
                key = handles[self._key_id] = _find_private_key(session, self._key_id, self._label)
            return bytes(key.sign(data, mechanism=mechanism))

        return self._pool.run(operation)

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self

    def _refuse(self, what: str) -> NoReturn:
        raise KeystoreError(f"a PKCS#11 key cannot {what}")


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> bytes:
    if isinstance(algorithm, utils.Prehashed):
        return data
    return hashlib.new(algorithm.name, data).digest()


class Pkcs11EcKey(_TokenKey, ec.EllipticCurvePrivateKey):
    """An EC key in a token: hash on the host, ``CKM_ECDSA`` in the token, verify, DER (r, s)."""

    def sign(self, data: bytes | bytearray | memoryview, signature_algorithm: Any) -> bytes:
        data = bytes(data)
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm("only ECDSA signatures")
        if getattr(signature_algorithm, "deterministic_signing", False):
            raise UnsupportedAlgorithm("the token's ECDSA is randomised (RFC 6979 unsupported)")
        algorithm = signature_algorithm.algorithm
        raw = self._sign_in_token(_digest(data, algorithm), Mechanism.ECDSA)
        half = len(raw) // 2
        der = utils.encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
        _verified(lambda: self.public_key().verify(der, data, signature_algorithm))
        return der

    @property
    def curve(self) -> ec.EllipticCurve:
        return self.public_key().curve

    @property
    def key_size(self) -> int:
        return self.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        assert isinstance(self._public, ec.EllipticCurvePublicKey)
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        self._refuse("do key agreement")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        self._refuse("be exported")

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        self._refuse("be exported")


class Pkcs11RsaKey(_TokenKey, rsa.RSAPrivateKey):
    """An RSA key in a token: RSASSA-PKCS1-v1_5 with the hash computed in the token."""

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        padding: padding.AsymmetricPadding,
        algorithm: Any,
    ) -> bytes:
        data = bytes(data)
        if not isinstance(algorithm, hashes.HashAlgorithm):
            raise UnsupportedAlgorithm("RSA signing needs a hash algorithm (not pre-hashed)")
        signature = self._sign_in_token(data, _rsa_mechanism(padding, algorithm))
        _verified(lambda: self.public_key().verify(signature, data, padding, algorithm))
        return signature

    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    def public_key(self) -> rsa.RSAPublicKey:
        assert isinstance(self._public, rsa.RSAPublicKey)
        return self._public

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        self._refuse("decrypt")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        self._refuse("be exported")

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        self._refuse("be exported")


def _rsa_mechanism(pad: padding.AsymmetricPadding, algorithm: hashes.HashAlgorithm) -> Mechanism:
    """RSASSA-PKCS1-v1_5 (RFC 8017 §8.2), the only RSA scheme certplane's CAs sign with."""
    if isinstance(pad, padding.PKCS1v15) and algorithm.name in _RSA_PKCS1:
        return _RSA_PKCS1[algorithm.name]
    raise UnsupportedAlgorithm(f"RSA {pad.name} with {algorithm.name} is not supported")


def _verified(check: Callable[[], None]) -> None:
    """A token signature that does not verify is never released."""
    try:
        check()
    except InvalidSignature:
        raise KeystoreError("the token returned a signature that does not verify") from None


# --- the keystore -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pkcs11Settings:
    """What `Pkcs11KeyStore` needs: the module, the tokens it may use, where PINs come from.

    ``tokens[0]`` holds shared keys (a per-owner key object in a shared token); the others are
    dedicated tokens that `generate` claims for one owner when asked to place a key there.
    """

    module: str
    tokens: Sequence[str]
    pin_source: str
    sessions: int = 4
    backoff: Backoff = Backoff()
    session_wait_seconds: float = 30.0


class Pkcs11KeyStore:
    """A `KeyStore` over PKCS#11 tokens (see the module docstring)."""

    scheme = "pkcs11"

    def __init__(self, settings: Pkcs11Settings, environ: Mapping[str, str] | None = None) -> None:
        if not settings.tokens:
            raise KeystoreError("keystore.pkcs11.tokens: name at least one token")
        if settings.sessions < 1:
            raise KeystoreError("keystore.pkcs11.sessions: expected at least 1")
        module = _Module.load(settings.module)
        self._shared = settings.tokens[0]
        self._pools = {
            label: _TokenSessions(
                module,
                label,
                read_pin(settings.pin_source, label, environ),
                settings.sessions,
                settings.backoff,
                settings.session_wait_seconds,
            )
            for label in settings.tokens
        }

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore(tokens={list(self._pools)!r})"

    def check(self) -> None:
        """Log in to every configured token now; a wrong PIN or a missing token is an error
        at start, not at the first issuance."""
        for pool in self._pools.values():
            pool.check()

    def generate(
        self, algorithm: KeyAlgorithm, *, binding: str, placement: str | None = None
    ) -> StoredKey:
        """Generate a key pair inside a token: the shared token, or ``placement`` (a dedicated
        token, claimed for ``binding`` on first use).

        Raises:
            KeyBindingError: the token is dedicated to another owner.
            KeystoreError: unknown token, or the token refused.
        """
        check_binding(binding)
        if placement == self._shared:
            placement = None  # the shared token is never dedicated to one owner
        label = placement or self._shared
        pool = self._pool(label)
        key_id = secrets.token_bytes(16)
        object_label = key_label(binding, key_id)

        def operation(session: Any) -> PublicKey:
            _claim(session, binding, dedicated=placement is not None, token=label)
            _generate_pair(session, KeyAlgorithm(algorithm), key_id, object_label)
            return _public_key(session, key_id)

        public = pool.run(operation)
        uri = Pkcs11Uri(
            path={
                "token": label.encode(),
                "object": object_label.encode(),
                "id": key_id,
                "type": b"private",
            }
        )
        return StoredKey(ref=str(uri), public_key=public)

    def load(self, ref: str, *, binding: str) -> SigningKey:
        """The key of ``ref`` if the token records it as ``binding``'s.

        Raises:
            KeyBindingError: the ref, the key's label in the token, or the token's owner names
                another binding.
            KeystoreError: malformed ref, unknown token or key.
            KeystoreUnavailable: the token cannot be reached now.
        """
        check_binding(binding)
        uri = parse_pkcs11_uri(ref)
        key_id, token = uri.key_id, uri.token
        if not key_id or token is None or uri.object_type != "private":
            raise KeystoreError("pkcs11 key ref needs token, id and type=private")
        expected = key_label(binding, key_id)
        if uri.object_label != expected:
            raise KeyBindingError(f"key ref is not bound to {binding}")
        pool = self._pool(token)

        def operation(session: Any) -> PublicKey:
            _check_owner(session, binding, token)
            _find_private_key(session, key_id, expected)
            return _public_key(session, key_id)

        public = pool.run(operation)
        if isinstance(public, ec.EllipticCurvePublicKey):
            return Pkcs11EcKey(pool, key_id, expected, public)
        return Pkcs11RsaKey(pool, key_id, expected, public)

    def _pool(self, token: str) -> _TokenSessions:
        pool = self._pools.get(token)
        if pool is None:
            raise KeystoreError(f"token {token!r} is not in keystore.pkcs11.tokens")
        return pool


def _generate_pair(session: Any, algorithm: KeyAlgorithm, key_id: bytes, label: str) -> None:
    """CKA_SENSITIVE, never extractable, sign-only, label fixed (PKCS#11 v2.40 §4.9)."""
    private = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    public: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        Attribute.VERIFY: True,
        Attribute.ENCRYPT: False,
        Attribute.WRAP: False,
        Attribute.MODIFIABLE: False,
    }
    if algorithm in _CURVE_NAMES:
        public[Attribute.EC_PARAMS] = encode_named_curve_parameters(_CURVE_NAMES[algorithm])
        session.generate_keypair(
            KeyType.EC, store=True, label=label, id=key_id,
            public_template=public, private_template=private,
        )  # fmt: skip
    else:
        session.generate_keypair(
            KeyType.RSA, _RSA_BITS[algorithm], store=True, label=label, id=key_id,
            public_template=public, private_template=private,
        )  # fmt: skip


def _owner(session: Any) -> str | None:
    found = list(
        session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: OWNER_LABEL})
    )
    if not found:
        return None
    if len(found) > 1:
        raise KeystoreError("the token has several certplane/owner objects: resolve by hand")
    return bytes(found[0][Attribute.VALUE]).decode("utf-8", "replace")


def _check_owner(session: Any, binding: str, token: str) -> None:
    owner = _owner(session)
    if owner is not None and owner != binding:
        raise KeyBindingError(f"token {token} is dedicated to another owner")


def _claim(session: Any, binding: str, *, dedicated: bool, token: str) -> None:
    """A dedicated token belongs to the first owner that places a key in it."""
    _check_owner(session, binding, token)
    if dedicated and _owner(session) is None:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.MODIFIABLE: False,
                Attribute.LABEL: OWNER_LABEL,
                Attribute.APPLICATION: _APPLICATION,
                Attribute.VALUE: binding.encode("utf-8"),
            }
        )


if TYPE_CHECKING:

    def _conforms(store: Pkcs11KeyStore) -> KeyStore:
        """Static check that `Pkcs11KeyStore` satisfies the `KeyStore` protocol."""
        return store
