"""The key stores of a configuration: software always, PKCS#11 when configured (§6)."""

from __future__ import annotations

from certplane.ca.keys.api import KeyStore, KeyStoreRouter
from certplane.ca.keys.envelope import MasterKey
from certplane.ca.keys.pkcs11 import Backoff, Pkcs11KeyStore, Pkcs11Settings
from certplane.ca.keys.software import SoftwareKeyStore
from certplane.server.config import Config


def build_keystore(config: Config, master: MasterKey) -> KeyStoreRouter:
    """Every configured store behind one router; new CA keys go to ``keystore.backend``.

    Software refs keep loading when new keys go to PKCS#11. Every PKCS#11 token is logged in
    here, so a wrong PIN or a missing token stops the start instead of the first issuance.

    Raises:
        KeystoreError: a token refused the PIN or cannot be found.
    """
    stores: dict[str, KeyStore] = {"soft": SoftwareKeyStore(master)}
    p11 = config.keystore.pkcs11
    if p11.module:
        backoff = Backoff(p11.reconnect_first_seconds, p11.reconnect_max_seconds)
        settings = Pkcs11Settings(p11.module, p11.tokens, p11.pin_source, p11.sessions, backoff)
        store = Pkcs11KeyStore(settings)
        store.check()
        stores["pkcs11"] = store
    generate_in = "pkcs11" if config.keystore.backend == "pkcs11" else "soft"
    return KeyStoreRouter(stores, generate_in=generate_in)
