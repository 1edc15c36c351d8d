"""pebble-challtestsrv as a lab: DNS answers, CAA records and a tls-alpn-01 responder."""

from __future__ import annotations

from cptest.challtestsrv import HOST, ChallTestSrv, _fqdn, _free_tcp_port


class DnsLab(ChallTestSrv):
    """Also serves tls-alpn-01 responses on ``tlsalpn01_port``; names resolve to 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.tlsalpn01_port = _free_tcp_port()

    def _flags(self) -> dict[str, str]:
        return {
            **super()._flags(),
            "-tlsalpn01": f"{HOST}:{self.tlsalpn01_port}",
            "-defaultIPv4": "127.0.0.1",
            "-defaultIPv6": "",
        }

    def add_tlsalpn01(self, host: str, key_authorization: str) -> None:
        self._post("/add-tlsalpn01", {"host": host, "content": key_authorization})

    def add_caa(self, host: str, policies: list[dict[str, str]]) -> None:
        self._post("/add-caa", {"host": _fqdn(host), "policies": policies})
