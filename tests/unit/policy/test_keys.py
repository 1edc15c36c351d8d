"""Account and CSR key rules (Boulder goodkey): every rule, accepted and refused."""

from __future__ import annotations

import secrets
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

from certplane.policy.keys import (
    ACCOUNT_KEY_RULES,
    CSR_KEY_RULES,
    WeakKeyError,
    check_account_key,
    check_csr_key,
)


@cache
def rsa_key(bits: int) -> rsa.RSAPublicKey:
    return rsa.generate_private_key(65537, bits).public_key()


def rsa_numbers(e: int, n: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(e, n).public_key()


def ec_key(curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(curve).public_key()


def _next_rough(n: int) -> int:
    """The next odd number >= n without a prime factor below 1000 (the sieve's blind spot).

    Fermat's method and the sieve look only at the modulus, so factors need not be prime.
    """
    n |= 1
    while any(n % p == 0 for p in range(3, 1000, 2)):
        n += 2
    return n


def _random_odd(bits: int) -> int:
    return 0b11 << (bits - 2) | secrets.randbits(bits - 2)


def rejected(check, key: object) -> str:
    with pytest.raises(WeakKeyError) as excinfo:
        check(key)
    return excinfo.value.detail


@pytest.mark.parametrize("check", [check_account_key, check_csr_key])
@pytest.mark.parametrize("bits", [2048, 3072])
def test_rsa_keys_of_acceptable_size(check, bits: int):
    check(rsa_key(bits))


@pytest.mark.parametrize("check", [check_account_key, check_csr_key])
def test_rsa_too_small(check):
    detail = rejected(check, rsa_key(1024))
    assert "has 1024 bits: expected 2048 to 8192 bits" in detail


@pytest.mark.parametrize("check", [check_account_key, check_csr_key])
def test_rsa_too_large(check):
    detail = rejected(check, rsa_numbers(65537, (1 << 8192) + 1))
    assert "has 8193 bits" in detail


def test_rsa_size_bounds_are_inclusive():
    check_account_key(rsa_numbers(65537, _next_rough(_random_odd(8192))))
    check_account_key(rsa_numbers(65537, _next_rough(_random_odd(2048))))
    check_account_key(rsa_numbers(65537, _next_rough(1 << 2047)))


@pytest.mark.parametrize(
    "e",
    [3, 17, 65535, (1 << 256) + 1],
)
def test_rsa_exponent_refused(e: int):
    n = rsa_key(2048).public_numbers().n
    assert "exponent" in rejected(check_account_key, rsa_numbers(e, n))


@pytest.mark.parametrize("e", [65537, 65539, (1 << 255) + 1])
def test_rsa_large_odd_exponent_accepted(e: int):
    check_csr_key(rsa_numbers(e, rsa_key(2048).public_numbers().n))


@pytest.mark.parametrize("factor", [2, 3, 997])
def test_rsa_modulus_with_small_factor(factor: int):
    n = rsa_key(2048).public_numbers().n * factor
    assert "small prime factor" in rejected(check_account_key, rsa_numbers(65537, n))


def test_rsa_modulus_with_factor_just_above_the_sieve_is_not_caught_by_it():
    n = rsa_key(2048).public_numbers().n * 1009
    check_account_key(rsa_numbers(65537, n))


def test_rsa_modulus_with_close_factors_is_fermat_factorable():
    p = _next_rough(_random_odd(1024))
    q = _next_rough(p + 2)
    detail = rejected(check_account_key, rsa_numbers(65537, p * q))
    assert "too close together" in detail


def test_rsa_perfect_square_modulus():
    p = _next_rough(_random_odd(1024))
    assert "too close together" in rejected(check_csr_key, rsa_numbers(65537, p * p))


@pytest.mark.parametrize(
    ("curve", "account_ok", "csr_ok"),
    [
        (ec.SECP256R1(), True, True),
        (ec.SECP384R1(), True, True),
        (ec.SECP521R1(), True, False),
        (ec.SECP256K1(), False, False),
        (ec.SECP224R1(), False, False),
        (ec.BrainpoolP256R1(), False, False),
    ],
)
def test_ec_curves(curve: ec.EllipticCurve, account_ok: bool, csr_ok: bool):
    key = ec_key(curve)
    for check, ok in ((check_account_key, account_ok), (check_csr_key, csr_ok)):
        if ok:
            check(key)
        else:
            assert "is not allowed for" in rejected(check, key)


def test_ec_detail_names_curve_and_expectation():
    detail = rejected(check_csr_key, ec_key(ec.SECP521R1()))
    assert detail == (
        "ECDSA curve P-521 is not allowed for certificate keys: expected "
        "RSA 2048-8192 bits, ECDSA P-256, ECDSA P-384"
    )


def test_ed25519_for_accounts_only():
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    check_account_key(key)
    assert rejected(check_csr_key, key).startswith("Ed25519 certificate keys are not allowed")


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (ed448.Ed448PrivateKey.generate().public_key(), "Ed448"),
        (x25519.X25519PrivateKey.generate().public_key(), "X25519"),
        (object(), "unknown-type"),
        (b"not a key", "unknown-type"),
    ],
)
@pytest.mark.parametrize("check", [check_account_key, check_csr_key])
def test_other_key_types_refused(check, key: object, kind: str):
    detail = rejected(check, key)
    assert detail.startswith(f"{kind} ")
    assert "expected RSA 2048-8192 bits" in detail


def test_rules_are_data():
    assert ACCOUNT_KEY_RULES.curves == ("secp256r1", "secp384r1", "secp521r1")
    assert ACCOUNT_KEY_RULES.allow_ed25519
    assert CSR_KEY_RULES.curves == ("secp256r1", "secp384r1")
    assert not CSR_KEY_RULES.allow_ed25519
    assert ACCOUNT_KEY_RULES.expected() == (
        "RSA 2048-8192 bits, ECDSA P-256, ECDSA P-384, ECDSA P-521, Ed25519"
    )


def test_detail_never_contains_key_material():
    key = rsa_key(1024)
    n_hex = format(key.public_numbers().n, "x")
    detail = rejected(check_account_key, key)
    assert n_hex[:16] not in detail and str(key.public_numbers().n)[:16] not in detail
