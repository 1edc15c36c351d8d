"""Hostile test settings of the web front end (off unless ``[testing]`` turns them on)."""

from __future__ import annotations

import json
import random
from collections import OrderedDict

from certplane.server.wfe.jose import ParsedJws

REMEMBERED_SIGNERS = 10_000


class NonceRejecter:
    """Answers ``badNonce`` to a share of requests whose nonce was valid.

    Like Pebble's ``PEBBLE_WFE_NONCEREJECT``, this makes clients exercise the retry that
    RFC 8555 §6.5 asks of them ("the client SHOULD retry the request using the new nonce").
    Unlike a plain coin toss it never rejects two requests in a row from the same signer, so a
    client that retries once always gets through and runs with the knob on are deterministic in
    outcome, if not in which requests were rejected.
    """

    def __init__(self, percent: int, rng: random.Random | None = None) -> None:
        self.percent = percent
        self._rng = rng or random.Random()
        self._just_rejected: OrderedDict[str, None] = OrderedDict()

    def should_reject(self, jws: ParsedJws) -> bool:
        """Whether to reject this request's (valid) nonce."""
        if not self.percent:
            return False
        signer = _signer(jws)
        if signer in self._just_rejected:
            del self._just_rejected[signer]
            return False  # the retry after our rejection
        if self._rng.randrange(100) >= self.percent:
            return False
        self._just_rejected[signer] = None
        while len(self._just_rejected) > REMEMBERED_SIGNERS:
            self._just_rejected.popitem(last=False)
        return True


def _signer(jws: ParsedJws) -> str:
    kid = jws.kid
    return kid if kid is not None else json.dumps(jws.jwk, sort_keys=True)
