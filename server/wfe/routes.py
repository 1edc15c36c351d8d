"""The route table: one line per ACME resource (RFC 8555 §7.1, RFC 9773 §4)."""

from __future__ import annotations

from aiohttp import web

from certplane.server.wfe.handlers import (
    account,
    authz,
    certificate,
    crl,
    directory,
    inventory,
    ocsp,
    order,
    renewal_info,
)

T = "/acme/{tenant}"


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{T}/directory", directory.directory)
    r.add_route("HEAD", f"{T}/new-nonce", directory.new_nonce)
    r.add_get(f"{T}/new-nonce", directory.new_nonce, allow_head=False)
    r.add_post(f"{T}/new-account", account.new_account)
    r.add_post(f"{T}/acct/{{account_id}}", account.account)
    r.add_post(f"{T}/acct/{{account_id}}/orders", account.account_orders)
    r.add_post(f"{T}/key-change", account.key_change)
    r.add_post(f"{T}/new-order", order.new_order)
    r.add_post(f"{T}/order/{{order_id}}", order.order)
    r.add_post(f"{T}/order/{{order_id}}/finalize", order.finalize)
    r.add_post(f"{T}/authz/{{authz_id}}", authz.authorization)
    r.add_post(f"{T}/chall/{{challenge_id}}", authz.challenge)
    r.add_post(f"{T}/cert/{{cert_id}}", certificate.certificate)
    r.add_post(f"{T}/cert/{{cert_id}}/{{alternate:[1-9][0-9]{{0,2}}}}", certificate.certificate)
    r.add_post(f"{T}/revoke-cert", certificate.revoke_cert)
    r.add_get(f"{T}/renewal-info/{{cert_id}}", renewal_info.renewal_info)  # RFC 9773 §4.1
    r.add_post(f"{T}/inventory", inventory.report_inventory)  # certplane: meta.certplaneInventory
    r.add_get("/crl/{tenant}/{issuer_id}.crl", crl.crl)
    r.add_get("/ca/{tenant}/{issuer_id}.der", crl.ca_certificate)
    r.add_post("/ocsp/{tenant}/{issuer_id}", ocsp.ocsp_post)
    r.add_get("/ocsp/{tenant}/{issuer_id}/{request:.+}", ocsp.ocsp_get)
