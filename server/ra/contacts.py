"""Account contact URLs (RFC 8555 §7.3): ``mailto:`` only, one plain address each."""

from __future__ import annotations

import re

from certplane.server.errors import AcmeProblem, ProblemType

MAX_CONTACTS = 10
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,62}"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_DOMAIN}$")


def parse_contacts(raw: object) -> tuple[str, ...]:
    """Validate a ``contact`` array: unsupported schemes and bad addresses are refused (§7.3)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise AcmeProblem(ProblemType.MALFORMED, "contact must be an array of strings")
    if len(raw) > MAX_CONTACTS:
        raise AcmeProblem(ProblemType.INVALID_CONTACT, f"at most {MAX_CONTACTS} contacts")
    return tuple(_check_contact(contact) for contact in raw)


def _check_contact(contact: str) -> str:
    scheme, sep, address = contact.partition(":")
    if not sep or scheme.lower() != "mailto":
        raise AcmeProblem(ProblemType.UNSUPPORTED_CONTACT, "only mailto: contacts are supported")
    if "?" in address or "," in address or "%" in address:
        raise AcmeProblem(
            ProblemType.INVALID_CONTACT,
            "a mailto: contact must hold exactly one address and no header fields",
        )
    if len(address) > 254 or not _ADDRESS.match(address):
        raise AcmeProblem(ProblemType.INVALID_CONTACT, "contact is not a valid email address")
    return f"mailto:{address}"
