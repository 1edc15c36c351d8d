"""Roles and permissions of the management API: the one table the permission matrix comes from.

A principal holds roles either on the platform (``platform-admin``, ``support``) or in exactly one
tenant (``tenant-admin``, ``approver``, ``requester``, ``auditor``). A tenant role never reaches
another tenant: the API answers a foreign tenant with 404, as if it did not exist.

Separation of duties is part of the table: nobody both writes policy and decides approvals unless
they hold both roles, and two extra rules apply in the use cases (maker-checker): nobody decides
their own request, and a sensitive policy change needs a second tenant-admin.

``docs/permissions.md`` is generated from this module and a test walks every role against every
endpoint of the API to check the answers against it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PLATFORM_ADMIN = "platform-admin"
    SUPPORT = "support"
    TENANT_ADMIN = "tenant-admin"
    APPROVER = "approver"
    REQUESTER = "requester"
    AUDITOR = "auditor"

    @property
    def on_platform(self) -> bool:
        """Platform roles see every tenant; tenant roles see their own tenant only."""
        return self in PLATFORM_ROLES


PLATFORM_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.SUPPORT})
TENANT_ROLES = frozenset(set(Role) - PLATFORM_ROLES)


class Permission(StrEnum):
    """What an endpoint needs; each endpoint of the API names exactly one."""

    WHOAMI = "whoami"
    TENANTS_LIST = "tenants:list"
    TENANTS_CREATE = "tenants:create"
    TENANTS_READ = "tenants:read"
    TENANTS_STATUS = "tenants:status"
    LIMITS_READ = "limits:read"
    LIMITS_WRITE = "limits:write"
    WEBHOOK_WRITE = "webhook:write"
    EAB_READ = "eab:read"
    EAB_CREATE = "eab:create"
    EAB_REVOKE = "eab:revoke"
    POLICY_READ = "policy:read"
    POLICY_WRITE = "policy:write"
    POLICY_ACTIVATE = "policy:activate"
    APPROVALS_READ = "approvals:read"
    APPROVALS_DECIDE = "approvals:decide"
    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_DEACTIVATE = "accounts:deactivate"
    ORDERS_READ = "orders:read"
    CERTIFICATES_READ = "certificates:read"
    CERTIFICATES_REVOKE = "certificates:revoke"
    EVENTS_READ = "events:read"
    TOKENS_READ = "tokens:read"
    TOKENS_WRITE = "tokens:write"
    PLATFORM_TOKENS = "platform-tokens:write"


P = Permission
_READ_TENANT = {
    P.TENANTS_READ,
    P.LIMITS_READ,
    P.POLICY_READ,
    P.APPROVALS_READ,
    P.ORDERS_READ,
    P.CERTIFICATES_READ,
}

GRANTS: dict[Role, frozenset[Permission]] = {
    # Runs the platform: tenants, their limits, the first tokens of a tenant; reads inventories.
    # Does not write a tenant's policy nor decide its approvals (the tenant's own people do).
    Role.PLATFORM_ADMIN: frozenset(
        {
            P.WHOAMI,
            P.TENANTS_LIST,
            P.TENANTS_CREATE,
            P.TENANTS_STATUS,
            P.LIMITS_WRITE,
            P.EAB_READ,
            P.ACCOUNTS_READ,
            P.EVENTS_READ,
            P.TOKENS_READ,
            P.TOKENS_WRITE,
            P.PLATFORM_TOKENS,
            *_READ_TENANT,
        }
    ),
    # Status across tenants, each access with a stated reason that is recorded as an event.
    Role.SUPPORT: frozenset({P.WHOAMI, P.TENANTS_LIST, P.TENANTS_READ}),
    # Runs one tenant: policy, EAB keys, accounts, tokens, revocation; decides policy approvals.
    Role.TENANT_ADMIN: frozenset(
        {
            P.WHOAMI,
            P.WEBHOOK_WRITE,
            P.EAB_READ,
            P.EAB_CREATE,
            P.EAB_REVOKE,
            P.POLICY_WRITE,
            P.POLICY_ACTIVATE,
            P.APPROVALS_DECIDE,
            P.ACCOUNTS_READ,
            P.ACCOUNTS_DEACTIVATE,
            P.CERTIFICATES_REVOKE,
            P.EVENTS_READ,
            P.TOKENS_READ,
            P.TOKENS_WRITE,
            *_READ_TENANT,
        }
    ),
    # Decides certificate approvals; reads what it needs to decide.
    Role.APPROVER: frozenset({P.WHOAMI, P.APPROVALS_DECIDE, P.ACCOUNTS_READ, *_READ_TENANT}),
    # Enrols ACME clients (EAB keys) and follows their orders and certificates.
    Role.REQUESTER: frozenset({P.WHOAMI, P.EAB_READ, P.EAB_CREATE, *_READ_TENANT}),
    # Reads everything of the tenant, events included; changes nothing.
    Role.AUDITOR: frozenset(
        {P.WHOAMI, P.EAB_READ, P.ACCOUNTS_READ, P.EVENTS_READ, P.TOKENS_READ, *_READ_TENANT}
    ),
}

# Which role decides which kind of approval (APPROVALS_DECIDE is necessary, this is sufficient).
DECIDES: dict[str, Role] = {"order": Role.APPROVER, "policy": Role.TENANT_ADMIN}

# Support reads tenant status only with a reason, which is recorded (and nothing else).
NEEDS_REASON: dict[Role, frozenset[Permission]] = {
    Role.SUPPORT: frozenset({P.TENANTS_LIST, P.TENANTS_READ})
}


def allows(roles: frozenset[Role], permission: Permission) -> bool:
    """Whether any of ``roles`` grants ``permission``."""
    return any(permission in GRANTS[role] for role in roles)


def needs_reason(roles: frozenset[Role], permission: Permission) -> bool:
    """Whether ``permission`` is granted to these roles only on condition of a stated reason."""
    unconditional = any(
        permission in GRANTS[role] and permission not in NEEDS_REASON.get(role, frozenset())
        for role in roles
    )
    return not unconditional and allows(roles, permission)


def parse_roles(names: list[str] | tuple[str, ...], *, platform: bool) -> frozenset[Role]:
    """Roles from their names, all platform roles or all tenant roles.

    Raises:
        ValueError: an unknown name, none at all, or a role of the wrong level.
    """
    if not names:
        raise ValueError("at least one role is required")
    roles: set[Role] = set()
    for name in names:
        try:
            roles.add(Role(name))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ValueError(f"unknown role {name!r} (known: {known})") from None
    wrong = sorted(r.value for r in roles if r.on_platform is not platform)
    if wrong:
        level = "platform" if platform else "tenant"
        raise ValueError(f"not a {level} role: {', '.join(wrong)}")
    return frozenset(roles)
