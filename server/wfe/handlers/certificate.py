"""Certificate download and revocation (RFC 8555 §7.4.2, §7.6)."""

from __future__ import annotations

from aiohttp import web

from certplane.server.errors import malformed, not_found
from certplane.server.model import CertificateStatus, IssuerRecord
from certplane.server.wfe.context import services, tenant_context
from certplane.server.wfe.jose import b64url_decode
from certplane.server.wfe.jws import KeyMode, acme_post

PEM_CHAIN = "application/pem-certificate-chain"
_END = "-----END CERTIFICATE-----"


async def certificate(request: web.Request) -> web.Response:
    """The chain as ``application/pem-certificate-chain``, to the account that ordered it.

    RFC 8555 §7.4.2: when the issuer offers other chains (a cross-signed intermediate), each is
    at ``cert/{id}/{n}`` and every download links the others with ``rel="alternate"``.
    """
    ctx = tenant_context(request)
    chosen = int(request.match_info.get("alternate", "0"))
    async with acme_post(request, KeyMode.KID) as post:
        if not post.is_post_as_get:
            raise malformed("download a certificate with POST-as-GET (an empty payload)")
        cert_id = request.match_info["cert_id"]
        cert = await post.tx.certificates.get(cert_id)
        account = post.require_account()
        visible = (CertificateStatus.ISSUED, CertificateStatus.REVOKED)
        if cert is None or cert.account_id != account.id or cert.status not in visible:
            raise not_found("certificate")
        assert cert.chain_pem is not None
        issuer = await post.tx.issuers.get(cert.issuer_id)
        chains = [cert.chain_pem, *_alternates(cert.chain_pem, issuer)]
        if chosen >= len(chains):
            raise not_found("certificate chain")
        response = web.Response(body=chains[chosen].encode("ascii"), content_type=PEM_CHAIN)
        for index in range(len(chains)):
            if index != chosen:
                url = ctx.links.certificate(cert_id, index)
                response.headers.add("Link", f'<{url}>;rel="alternate"')
        return response


def _alternates(default_chain: str, issuer: IssuerRecord | None) -> list[str]:
    """Leaf + issuer certificate + each alternate chain above the issuer."""
    if issuer is None or not issuer.alternate_chains:
        return []
    leaf = default_chain[: default_chain.index(_END) + len(_END)].strip() + "\n"
    return [leaf + issuer.certificate_pem + chain for chain in issuer.alternate_chains]


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
