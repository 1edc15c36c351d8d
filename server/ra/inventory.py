"""Host inventory reports (certplane's extension to ACME): an agent, signing with its account
key, reports the certificates it found and manages on a host and what it did to them.

One report, one transaction (the request's): the account's snapshot of the host is replaced;
each item is linked to the certificate this tenant issued with its fingerprint; a served
location of such a certificate not yet recorded there appends one ``certificate.deployed``
event (``source: "inventory"``); each event of the agent is appended (``source: "agent"``)
on the certificate it names, or on the account when it names none this tenant issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certplane.server.model import Account, EventType
from certplane.server.ra.deps import RADeps
from certplane.server.ra.inventory_report import Event, InventoryReport, Item
from certplane.server.storage.repos.host_inventory import Seen
from certplane.server.storage.scope import new_id
from certplane.server.storage.uow import TenantTx

AGENT_EVENTS: dict[str, EventType] = {
    "deployed": EventType.DEPLOYED,
    "renewed": EventType.RENEWED,
    "failed": EventType.AGENT_FAILED,
}


@dataclass(frozen=True)
class ReportOutcome:
    """What a report changed: the snapshot's size, how many items are this tenant's
    certificates, and the events appended (the agent's and the new ``deployed`` ones)."""

    host: str
    items: int
    linked: int
    events: int
    deployed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "items": self.items,
            "linked": self.linked,
            "events": self.events,
            "deployed": self.deployed,
        }


class InventoryService:
    def __init__(self, deps: RADeps) -> None:
        self._deps = deps

    async def record_report(
        self, tx: TenantTx, account: Account, report: InventoryReport
    ) -> ReportOutcome:
        """Replace ``account``'s snapshot of ``report.host`` and append the events, in ``tx``."""
        now = self._deps.clock.now()
        await tx.host_inventory.lock_account(account.id)
        previous = await tx.host_inventory.snapshot(account.id, report.host)
        issued = await tx.certificates.ids_by_fingerprint(sorted(_fingerprints(report)))
        rows = [
            _row(item, account.id, report.host, previous.get(item.fingerprint), issued, now)
            for item in report.items
        ]
        await tx.host_inventory.replace(account.id, report.host, rows)
        actor = f"account:{account.id}"
        deployed = await _record_served(tx, report, issued, actor, now)
        for event in report.events:
            await _record_event(tx, account, report.host, event, issued, actor, now)
        linked = sum(1 for item in report.items if item.fingerprint in issued)
        return ReportOutcome(report.host, len(rows), linked, len(report.events), deployed)


def _fingerprints(report: InventoryReport) -> set[str]:
    named = {event.certificate for event in report.events if event.certificate is not None}
    return {item.fingerprint for item in report.items} | named


def _row(
    item: Item,
    account_id: str,
    host: str,
    seen: Seen | None,
    issued: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    """The stored row of ``item``; a certificate already in the snapshot keeps its id and
    first sighting."""
    return {
        "id": seen.id if seen else new_id(),
        "account_id": account_id,
        "host": host,
        "fingerprint": item.fingerprint,
        "subject": item.subject,
        "sans": list(item.sans),
        "issuer": item.issuer,
        "not_before": item.not_before,
        "not_after": item.not_after,
        "key_type": item.key_type,
        "key_bits": item.key_bits,
        "signature_algorithm": item.signature_algorithm,
        "managed": item.managed,
        "served": item.served,
        "locations": [location.to_json() for location in item.locations],
        "certificate_id": issued.get(item.fingerprint),
        "first_seen": seen.first_seen if seen else now,
        "last_seen": now,
    }


async def _record_served(
    tx: TenantTx, report: InventoryReport, issued: dict[str, str], actor: str, now: datetime
) -> int:
    """One ``certificate.deployed`` event per (certificate, host, served location), ever.

    NOTE(deployed-once): what was recorded is read from the events themselves, so a location
    that stops being reported and comes back is not recorded again. Two accounts reporting the
    same host at the same moment may both record it (their reports do not lock each other).
    """
    served = [
        (issued[item.fingerprint], location)
        for item in report.items
        if item.fingerprint in issued
        for location in item.locations
        if location.served
    ]
    ids = sorted({cert_id for cert_id, _ in served})
    recorded = {
        (cert_id, data.get("host"), data.get("where"))
        for cert_id, data in await tx.events.of_type_for_objects(
            EventType.DEPLOYED, "certificate", ids
        )
    }
    appended = 0
    for cert_id, location in served:
        key = (cert_id, report.host, location.where)
        if key in recorded:
            continue
        recorded.add(key)
        await tx.events.append(
            EventType.DEPLOYED,
            object_type="certificate",
            object_id=cert_id,
            actor=actor,
            now=now,
            source="inventory",
            host=report.host,
            where=location.where,
            location=location.to_json(),
        )
        appended += 1
    return appended


async def _record_event(
    tx: TenantTx,
    account: Account,
    host: str,
    event: Event,
    issued: dict[str, str],
    actor: str,
    now: datetime,
) -> None:
    cert_id = issued.get(event.certificate) if event.certificate is not None else None
    await tx.events.append(
        AGENT_EVENTS[event.type],
        object_type="certificate" if cert_id else "account",
        object_id=cert_id or account.id,
        actor=actor,
        now=now,
        source="agent",
        host=host,
        name=event.name,
        detail=event.detail,
        fingerprint=event.certificate,
        at=event.at.isoformat(),
    )
