"""Every ACME URL, built from the configured base URL and the tenant slug (never the Host header).

Checklist when adding a resource: a method here, a line in ``routes.py``, a view in ``views.py``,
a row in the cross-tenant matrix test.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/acme/{tenant}"


@dataclass(frozen=True)
class Links:
    base_url: str
    slug: str

    def _url(self, path: str) -> str:
        return f"{self.base_url}/acme/{self.slug}{path}"

    @property
    def directory(self) -> str:
        return self._url("/directory")

    @property
    def new_nonce(self) -> str:
        return self._url("/new-nonce")

    @property
    def new_account(self) -> str:
        return self._url("/new-account")

    @property
    def new_order(self) -> str:
        return self._url("/new-order")

    @property
    def revoke_cert(self) -> str:
        return self._url("/revoke-cert")

    @property
    def key_change(self) -> str:
        return self._url("/key-change")

    @property
    def renewal_info(self) -> str:
        """RFC 9773 §3: the base URL; a certificate's resource is ``{renewal_info}/{CertID}``."""
        return self._url("/renewal-info")

    @property
    def inventory(self) -> str:
        """certplane's extension: where an agent reports a host's inventory (``meta``)."""
        return self._url("/inventory")

    @property
    def account_prefix(self) -> str:
        return self._url("/acct/")

    def account(self, account_id: str) -> str:
        return self._url(f"/acct/{account_id}")

    def account_orders(self, account_id: str, cursor: str | None = None) -> str:
        url = self._url(f"/acct/{account_id}/orders")
        return url if cursor is None else f"{url}?cursor={cursor}"

    def order(self, order_id: str) -> str:
        return self._url(f"/order/{order_id}")

    def finalize(self, order_id: str) -> str:
        return self._url(f"/order/{order_id}/finalize")

    def authz(self, authz_id: str) -> str:
        return self._url(f"/authz/{authz_id}")

    def challenge(self, challenge_id: str) -> str:
        return self._url(f"/chall/{challenge_id}")

    def certificate(self, cert_id: str, alternate: int = 0) -> str:
        """The certificate's default chain, or its ``alternate``-th other chain (from 1)."""
        suffix = f"/{alternate}" if alternate else ""
        return self._url(f"/cert/{cert_id}{suffix}")

    def path_url(self, path_qs: str) -> str:
        """The canonical URL of a request path under this server (for the JWS ``url`` check)."""
        return f"{self.base_url}{path_qs}"
