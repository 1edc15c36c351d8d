"""The written permission matrix (``docs/permissions.md``), generated from the role table and
the endpoint table; a test keeps the committed file equal to this output.

    python -m certplane.server.admin.matrix > docs/permissions.md
"""

from __future__ import annotations

from certplane.policy.rbac import DECIDES, GRANTS, NEEDS_REASON, Role
from certplane.server.admin import handlers
from certplane.server.admin.endpoints import API

ROLE_ORDER = (
    Role.PLATFORM_ADMIN,
    Role.SUPPORT,
    Role.TENANT_ADMIN,
    Role.APPROVER,
    Role.REQUESTER,
    Role.AUDITOR,
)

INTRO = """# Management API permissions

Generated from `policy/rbac.py` and the endpoint table (`server/admin/handlers/`) by
`python -m certplane.server.admin.matrix`; `tests/integration/api/test_role_matrix.py` calls
every endpoint with every role and checks the answers against this table.

- **yes**: the role may call the endpoint; **reason**: only with a `Certplane-Reason` header,
  which is recorded as a `support.access` event on the tenant's log; **-**: 403 `forbidden`.
- Platform roles (platform-admin, support) reach every tenant. Tenant roles (tenant-admin,
  approver, requester, auditor) reach their own tenant only: any other tenant is 404, exactly as
  if it did not exist.
- Nothing in the API returns key material: EAB HMAC keys, API tokens and webhook keys are shown
  once, in the answer that creates them, and are stored sealed or hashed.

Separation of duties (maker-checker), enforced beyond this table:
"""


def _cell(role: Role, permission: object) -> str:
    if permission is None:
        return "public"
    if permission not in GRANTS[role]:
        return "-"
    return "reason" if permission in NEEDS_REASON.get(role, frozenset()) else "yes"


def permission_matrix_markdown() -> str:
    handlers.register()
    lines = [INTRO]
    for kind, role in DECIDES.items():
        lines.append(f"- {kind} approvals are decided by the {role.value} role;")
    lines += [
        "- nobody decides a request they made (the order's EAB key creator, or the tenant-admin",
        "  who created or asked to activate a policy version), nor with a token minted by them or",
        "  by anyone they minted a token for;",
        "- a policy change that touches a sensitive field (the issuer each profile maps to, the",
        "  validity ceiling, approval rules) waits for a second tenant-admin.",
        "",
        "| Endpoint | Permission | " + " | ".join(r.value for r in ROLE_ORDER) + " |",
        "|---|---|" + "---|" * len(ROLE_ORDER),
    ]
    for endpoint in API.endpoints:
        permission = endpoint.permission.value if endpoint.permission else "-"
        cells = " | ".join(_cell(role, endpoint.permission) for role in ROLE_ORDER)
        lines.append(f"| `{endpoint.method} /api/v1{endpoint.path}` | {permission} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(permission_matrix_markdown(), end="")
