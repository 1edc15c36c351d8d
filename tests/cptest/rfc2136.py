"""An RFC 2136 UPDATE receiver that checks TSIG (RFC 8945) and publishes the TXT records it is
sent in pebble-challtestsrv, where the server's dns-01 validation looks them up."""

from __future__ import annotations

import socketserver
import struct
import threading

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring

from cptest.challtestsrv import ChallTestSrv
from cptest.net import free_port


class UpdateBridge:
    def __init__(self, lab: ChallTestSrv, key_name: str, secret_b64: str) -> None:
        self.port = free_port()
        self.refused = 0
        self.applied: list[tuple[str, str, str]] = []
        self._lab = lab
        self._keyring = dns.tsigkeyring.from_text({key_name: secret_b64})
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> UpdateBridge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _apply(self, wire: bytes) -> bytes:
        try:
            message = dns.message.from_wire(wire, keyring=self._keyring)
        except (dns.tsig.PeerError, dns.exception.DNSException):
            self.refused += 1
            refusal = dns.message.from_wire(wire, keyring=False)  # to answer NOTAUTH
            response = dns.message.make_response(refusal)
            response.set_rcode(dns.rcode.NOTAUTH)
            return response.to_wire()
        for rrset in message.update:  # the UPDATE section (RFC 2136 §2.5)
            if rrset.rdtype != dns.rdatatype.TXT:
                continue
            name = rrset.name.to_text()
            for rdata in rrset:
                value = b"".join(rdata.strings).decode()
                if rrset.deleting:
                    self._lab.clear_txt(name)
                    self.applied.append(("delete", name, value))
                else:
                    self._lab.set_txt(name, value)
                    self.applied.append(("add", name, value))
        response = dns.message.make_response(message)
        return response.to_wire()

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        bridge = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                (length,) = struct.unpack("!H", self.request.recv(2))
                wire = b""
                while len(wire) < length:
                    chunk = self.request.recv(length - len(wire))
                    if not chunk:
                        return
                    wire += chunk
                answer = bridge._apply(wire)
                self.request.sendall(struct.pack("!H", len(answer)) + answer)

        return Handler
