"""Which public keys certplane accepts, for accounts and for certificates (Boulder's ``goodkey``).

Rules are data (:class:`KeyRules`); :func:`check_account_key` and :func:`check_csr_key` apply the
two rule sets the platform uses. A refusal raises :class:`WeakKeyError` whose detail says what was
expected and never contains key material; the web front end maps it to ``badPublicKey``
(RFC 8555 §6.7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192
RSA_MIN_EXPONENT = 65537
RSA_MAX_EXPONENT_BITS = 256  # FIPS 186-5 §A.1.1: 2^16 < e < 2^256
FERMAT_ROUNDS = 100  # as Boulder: catches moduli whose prime factors are too close together

_CURVE_LABELS = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _primes_below(limit: int) -> tuple[int, ...]:
    """Primes below ``limit`` by trial division (run once, at import)."""
    return tuple(n for n in range(2, limit) if all(n % d for d in range(2, math.isqrt(n) + 1)))


_SMALL_PRIMES = _primes_below(1000)


class WeakKeyError(Exception):
    """The key is not acceptable; ``detail`` is safe to show to the client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class KeyRules:
    """What one kind of key may be. ``curves`` hold cryptography's curve names."""

    purpose: str
    curves: tuple[str, ...]
    allow_ed25519: bool
    rsa_min_bits: int = RSA_MIN_BITS
    rsa_max_bits: int = RSA_MAX_BITS

    def expected(self) -> str:
        """Human summary of acceptable keys, for error details."""
        kinds = [f"RSA {self.rsa_min_bits}-{self.rsa_max_bits} bits"]
        kinds += [f"ECDSA {_CURVE_LABELS.get(curve, curve)}" for curve in self.curves]
        if self.allow_ed25519:
            kinds.append("Ed25519")
        return ", ".join(kinds)


ACCOUNT_KEY_RULES = KeyRules("account", ("secp256r1", "secp384r1", "secp521r1"), True)
CSR_KEY_RULES = KeyRules("certificate", ("secp256r1", "secp384r1"), False)


def check_account_key(public_key: object) -> None:
    """An ACME account key (RFC 8555 §6.2): RSA, ECDSA P-256/P-384/P-521 or Ed25519."""
    check_key(public_key, ACCOUNT_KEY_RULES)


def check_csr_key(public_key: object) -> None:
    """A certificate key from a CSR (RFC 8555 §7.4): RSA or ECDSA P-256/P-384."""
    check_key(public_key, CSR_KEY_RULES)


def check_key(public_key: object, rules: KeyRules) -> None:
    """Raise :class:`WeakKeyError` unless ``public_key`` satisfies ``rules``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        _check_rsa(public_key.public_numbers(), rules)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        _check_ec(public_key, rules)
    elif not (isinstance(public_key, ed25519.Ed25519PublicKey) and rules.allow_ed25519):
        kind = _key_kind(public_key)
        raise WeakKeyError(
            f"{kind} {rules.purpose} keys are not allowed: expected {rules.expected()}"
        )


def _key_kind(public_key: object) -> str:
    kinds: list[tuple[type, str]] = [
        (ed25519.Ed25519PublicKey, "Ed25519"),
        (ed448.Ed448PublicKey, "Ed448"),
        (x25519.X25519PublicKey, "X25519"),
        (x448.X448PublicKey, "X448"),
        (dsa.DSAPublicKey, "DSA"),
    ]
    return next((name for cls, name in kinds if isinstance(public_key, cls)), "unknown-type")


def _check_ec(public_key: ec.EllipticCurvePublicKey, rules: KeyRules) -> None:
    """Named curve from the allow list; cryptography already refuses points off the curve."""
    curve = public_key.curve.name
    if curve not in rules.curves:
        label = _CURVE_LABELS.get(curve, curve)
        raise WeakKeyError(
            f"ECDSA curve {label} is not allowed for {rules.purpose} keys: "
            f"expected {rules.expected()}"
        )


def _check_rsa(numbers: rsa.RSAPublicNumbers, rules: KeyRules) -> None:
    """Size, exponent and modulus sanity (Boulder goodkey ``goodKeyRSA``)."""
    bits = numbers.n.bit_length()
    if not rules.rsa_min_bits <= bits <= rules.rsa_max_bits:
        raise WeakKeyError(
            f"RSA {rules.purpose} key has {bits} bits: "
            f"expected {rules.rsa_min_bits} to {rules.rsa_max_bits} bits"
        )
    _check_rsa_exponent(numbers.e)
    _check_rsa_modulus(numbers.n)


def _check_rsa_exponent(e: int) -> None:
    if e % 2 == 0 or e < RSA_MIN_EXPONENT or e.bit_length() > RSA_MAX_EXPONENT_BITS:
        raise WeakKeyError(
            f"RSA public exponent is not acceptable: expected 65537 "
            f"(or an odd value of at least 65537 below 2^{RSA_MAX_EXPONENT_BITS})"
        )


def _check_rsa_modulus(n: int) -> None:
    """No small prime factor (this includes an even modulus), not Fermat-factorable."""
    if any(n % prime == 0 for prime in _SMALL_PRIMES):
        raise WeakKeyError(
            "RSA modulus has a small prime factor: expected a product of two large primes"
        )
    if _fermat_factorable(n, FERMAT_ROUNDS):
        raise WeakKeyError(
            "RSA modulus factors are too close together: expected independent primes"
        )


def _fermat_factorable(n: int, rounds: int) -> bool:
    """Fermat's method: is ``n = a² - b²`` for some ``a`` within ``rounds`` steps of √n?"""
    a = math.isqrt(n)
    if a * a < n:
        a += 1
    for _ in range(rounds):
        b_squared = a * a - n
        b = math.isqrt(b_squared)
        if b * b == b_squared:
            return True
        a += 1
    return False
