"""Handlers of the management API, one module per resource; ``register()`` fills the table."""

from __future__ import annotations

import importlib

MODULES = (
    "meta",
    "tenants",
    "eab",
    "policies",
    "limits",
    "approvals",
    "inventory",
    "inventory_hosts",
    "events",
    "tokens",
)


def register() -> None:
    """Import every handler module once (each adds its endpoints to ``endpoints.API``)."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
