"""Keystore exceptions, part of the CA layer's error family (`CAError`)."""

from __future__ import annotations

from ..errors import CAError

__all__ = [
    "ContextMismatchError",
    "KeyBindingError",
    "KeystoreError",
    "KeystoreUnavailable",
    "MasterKeyError",
]


class KeystoreError(CAError):
    """A key or sealed blob cannot be used. The message never contains secret bytes."""


class MasterKeyError(KeystoreError):
    """The platform master key cannot be loaded (missing, malformed, unsafe file permissions)."""


class ContextMismatchError(KeystoreError):
    """A sealed blob was opened with a context other than the one it was sealed under."""


class KeyBindingError(KeystoreError):
    """A key reference was used for an owner (binding) it was not created for.

    This is the signing-time check that one tenant's issuance can never use another's key.
    """


class KeystoreUnavailable(KeystoreError):
    """The key store cannot be reached now (an HSM session or token lost, a network HSM away,
    reconnection in backoff). Transient: the caller retries later."""
