"""certbot's ``acme`` library as a client of a test server."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import josepy as jose
from acme import client, crypto_util, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from certplane.server.ra.provisioning import NewEab


def account_key(kind: str = "ec") -> jose.JWK:
    if kind == "rsa":
        return jose.JWKRSA(key=rsa.generate_private_key(65537, 2048))
    return jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


def new_client(directory_url: str, key: jose.JWK | None = None) -> client.ClientV2:
    key = key or account_key()
    alg = jose.RS256 if isinstance(key, jose.JWKRSA) else jose.ES256
    net = client.ClientNetwork(key, alg=alg, user_agent="certplane-tests")
    directory = messages.Directory.from_json(net.get(directory_url).json())
    return client.ClientV2(directory, net)


def register(
    acme: client.ClientV2, eab: NewEab | None, email: str = "ops@example.com"
) -> messages.RegistrationResource:
    binding = None
    if eab is not None:
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=acme.net.key.public_key(),
            kid=eab.kid,
            hmac_key=eab.hmac_key,
            directory=acme.directory,
        )
    reg = messages.NewRegistration.from_data(
        email=email, terms_of_service_agreed=True, external_account_binding=binding
    )
    return acme.new_account(reg)


def csr_for(
    names: list[str], key: PrivateKeyTypes | None = None, ips: Sequence[str] = ()
) -> tuple[bytes, PrivateKeyTypes]:
    """A PEM CSR for DNS ``names`` and IP addresses ``ips`` (a fresh P-256 key by default)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    addresses = [ipaddress.ip_address(ip) for ip in ips] or None
    return crypto_util.make_csr(pem, names or None, ipaddrs=addresses), key
