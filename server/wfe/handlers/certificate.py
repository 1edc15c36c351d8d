"""Certificate download and revocation (RFC 8555 §7.4.2, §7.6)."""

from __future__ import annotations

from aiohttp import web

from certplane.server.errors import malformed, not_found
from certplane.server.model import CertificateStatus
from certplane.server.wfe.context import services
from certplane.server.wfe.jose import b64url_decode
from certplane.server.wfe.jws import KeyMode, acme_post

PEM_CHAIN = "application/pem-certificate-chain"


async def certificate(request: web.Request) -> web.Response:
    """The chain as ``application/pem-certificate-chain``, to the account that ordered it."""
    async with acme_post(request, KeyMode.KID) as post:
        if not post.is_post_as_get:
            raise malformed("download a certificate with POST-as-GET (an empty payload)")
        cert = await post.tx.certificates.get(request.match_info["cert_id"])
        account = post.require_account()
        visible = (CertificateStatus.ISSUED, CertificateStatus.REVOKED)
        if cert is None or cert.account_id != account.id or cert.status not in visible:
            raise not_found("certificate")
        assert cert.chain_pem is not None
        return web.Response(body=cert.chain_pem.encode("ascii"), content_type=PEM_CHAIN)


async def revoke_cert(request: web.Request) -> web.Response:
    svc = services(request)
    async with acme_post(request, KeyMode.EITHER) as post:
        payload = post.payload
        der = payload.get("certificate")
        if not isinstance(der, str):
            raise malformed("revokeCert requires certificate (base64url DER)")
        await svc.revocation.revoke(
            post.tx,
            account=post.account,
            signing_key=post.key,
            certificate_der=b64url_decode(der, "certificate"),
            reason=payload.get("reason"),
        )
        return web.Response(status=200)
