"""Tenant policies: versions (YAML or JSON), validation, diff and activation.

A change to a sensitive field (the issuer each profile maps to, the validity ceiling, approval
rules) is not activated by the tenant-admin who asks: it waits for a second tenant-admin's
approval (maker-checker). A malformed document is refused with every offending field as a JSON
pointer (422), and the version in force stays in force.
"""

from __future__ import annotations

import json
import re
from typing import Any

from certplane.policy.document import (
    Policy,
    PolicyInvalid,
    diff_documents,
    policy_from_json,
    sensitive_changes,
)
from certplane.policy.rbac import Permission
from certplane.server.admin.endpoints import API, Answer, ApiCall, QueryParam
from certplane.server.admin.handlers.approvals import APPROVAL, approval_body
from certplane.server.admin.problems import (
    ApiProblem,
    ApiProblemType,
    FieldError,
    conflict,
    not_found,
)
from certplane.server.admin.schemas import (
    INTEGER,
    NULLABLE_TIMESTAMP,
    PAGE_PARAMS,
    STRING,
    TIMESTAMP,
    key_after,
    keyed_page,
    obj,
    page_of,
)
from certplane.server.ra.policies import PolicyVersionConflict
from certplane.server.storage.repos.policies import PolicyVersion

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
# Version numbers as paths and cursors spell them (ASCII digits: str.isdigit() also takes "²").
_NUMBER = re.compile(r"[0-9]{1,8}")
MAX_VERSION = 99_999_999
VERSION: dict[str, Any] = obj(
    ["version", "status", "document", "comment", "created_by", "created_at", "activated_at"],
    {
        "version": INTEGER,
        "status": {"enum": ["draft", "pending", "active", "superseded", "rejected"]},
        "document": {"type": "object"},
        "source": STRING,
        "comment": STRING,
        "created_by": STRING,
        "created_at": TIMESTAMP,
        "activated_at": NULLABLE_TIMESTAMP,
    },
)
POLICY_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "source": {"type": "string", "maxLength": 65536},
        "document": {"type": "object"},
        "comment": {"type": "string", "maxLength": 1000},
    },
    "oneOf": [{"required": ["source"]}, {"required": ["document"]}],
}


def version_json(version: PolicyVersion, *, source: bool = False) -> dict[str, Any]:
    body = {
        "version": version.version,
        "status": version.status.value,
        "document": version.document,
        "comment": version.comment,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "activated_at": version.activated_at.isoformat() if version.activated_at else None,
    }
    if source:
        body["source"] = version.source
    return body


def _input(call: ApiCall) -> tuple[str, str | None, str]:
    """(source text, media type, comment) of a policy sent as JSON or as YAML."""
    if isinstance(call.body, str):
        return call.body, "application/yaml", ""
    comment = call.body.get("comment", "")
    if "document" in call.body:
        return json.dumps(call.body["document"]), "application/json", comment
    return call.body["source"], None, comment


def _invalid(exc: PolicyInvalid) -> ApiProblem:
    errors = [FieldError(issue.pointer, issue.message) for issue in exc.issues]
    first = errors[0] if errors else FieldError("", "invalid")
    detail = f"{len(errors)} problem(s); first at {first.pointer or '/'}: {first.detail}"
    return ApiProblem(ApiProblemType.INVALID_POLICY, detail, errors)


@API.route(
    "POST",
    "/tenants/{tenant}/policies/validate",
    operation_id="validatePolicy",
    permission=Permission.POLICY_READ,
    summary="Check a policy document without storing it",
    request=POLICY_INPUT,
    raw_body=YAML_TYPES,
    response=obj(["valid", "document"], {"valid": {"const": True}, "document": {"type": "object"}}),
    tag="policies",
)
async def validate_policy(call: ApiCall) -> Answer:
    source, media, _comment = _input(call)
    try:
        policy = call.services.policies.parse(source, media)
    except PolicyInvalid as exc:
        raise _invalid(exc) from None
    return Answer({"valid": True, "document": policy.document})


@API.route(
    "POST",
    "/tenants/{tenant}/policies",
    operation_id="createPolicyVersion",
    permission=Permission.POLICY_WRITE,
    summary="Store a new policy version as a draft (JSON, or YAML with a YAML media type)",
    request=POLICY_INPUT,
    raw_body=YAML_TYPES,
    response=VERSION,
    status=201,
    tag="policies",
)
async def create_policy_version(call: ApiCall) -> Answer:
    source, media, comment = _input(call)
    services = call.services
    try:
        async with services.uow.begin(call.scope) as tx:
            version = await services.policies.add_version(
                tx, source, media, comment, call.principal.actor, services.clock.now()
            )
    except PolicyInvalid as exc:
        raise _invalid(exc) from None
    location = f"/tenants/{call.scope.slug}/policies/{version.version}"
    return Answer(version_json(version, source=True), 201, location=location)


@API.route(
    "GET",
    "/tenants/{tenant}/policies",
    operation_id="listPolicyVersions",
    permission=Permission.POLICY_READ,
    summary="Policy versions, newest first",
    response=page_of(VERSION),
    query=PAGE_PARAMS,
    tag="policies",
)
async def list_policy_versions(call: ApiCall) -> Answer:
    limit, after = call.query["limit"], key_after(call.query)
    before = _number(after) if after is not None else None
    async with call.services.uow.begin(call.scope, write=False) as tx:
        rows = await tx.policies.page(before=before, limit=limit + 1)
    page, cursor = keyed_page(rows, limit, lambda v: str(v.version))
    return Answer({"items": [version_json(v) for v in page], "next_cursor": cursor})


def _number(text: str) -> int | None:
    return int(text) if _NUMBER.fullmatch(text) else None


async def _version(call: ApiCall) -> PolicyVersion:
    number = _number(call.path("version"))
    async with call.services.uow.begin(call.scope, write=False) as tx:
        version = await tx.policies.get(number) if number is not None else None
    if version is None:
        raise not_found("policy version")
    return version


VERSION_PATH = "/tenants/{tenant}/policies/{version}"


@API.route(
    "GET",
    VERSION_PATH,
    operation_id="getPolicyVersion",
    permission=Permission.POLICY_READ,
    summary="One policy version with its source text",
    response=VERSION,
    tag="policies",
)
async def get_policy_version(call: ApiCall) -> Answer:
    return Answer(version_json(await _version(call), source=True))


DIFF = obj(
    ["from", "to", "changes", "sensitive"],
    {
        "from": {"type": ["integer", "null"]},
        "to": INTEGER,
        "changes": {"type": "array", "items": {"type": "object"}},
        "sensitive": {"type": "array", "items": STRING},
    },
)


@API.route(
    "GET",
    VERSION_PATH + "/diff",
    operation_id="diffPolicyVersion",
    permission=Permission.POLICY_READ,
    summary="What a version changes against another (default: the one in force)",
    response=DIFF,
    query=(
        QueryParam(
            "against",
            {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
            "the version to compare with",
        ),
    ),
    tag="policies",
)
async def diff_policy_version(call: ApiCall) -> Answer:
    target = await _version(call)
    async with call.services.uow.begin(call.scope, write=False) as tx:
        if "against" in call.query:
            base = await tx.policies.get(call.query["against"])
            if base is None:
                raise not_found("policy version")
        else:
            base = await tx.policies.active()
    old: Policy = policy_from_json(base.document) if base is not None else Policy.builtin()
    new = policy_from_json(target.document)
    return Answer(
        {
            "from": base.version if base is not None else None,
            "to": target.version,
            "changes": diff_documents(old.document, new.document),
            "sensitive": sensitive_changes(old, new),
        }
    )


ACTIVATION = obj(
    ["version", "status", "sensitive", "approval"],
    {
        "version": INTEGER,
        "status": {"enum": ["active", "pending"]},
        "sensitive": {"type": "array", "items": STRING},
        "approval": {"oneOf": [{"type": "null"}, APPROVAL]},
    },
)


@API.route(
    "POST",
    VERSION_PATH + "/activate",
    operation_id="activatePolicyVersion",
    permission=Permission.POLICY_ACTIVATE,
    summary="Put a draft in force, or (sensitive change) ask a second tenant-admin to approve",
    response=ACTIVATION,
    tag="policies",
)
async def activate_policy_version(call: ApiCall) -> Answer:
    number = (await _version(call)).version
    services, actor = call.services, call.principal.actor
    assert call.tenant is not None
    try:
        async with services.uow.begin(call.scope) as tx:
            activation = await services.policies.request_activation(
                tx, number, actor, services.clock.now()
            )
            approval = None
            if activation.sensitive:
                approval = await services.approvals.request_policy_change(
                    tx,
                    call.tenant,
                    number,
                    activation.sensitive,
                    activation.version.created_by,
                    actor,
                )
    except PolicyVersionConflict as exc:
        raise conflict(str(exc)) from None
    body = {
        "version": number,
        "status": activation.version.status.value,
        "sensitive": list(activation.sensitive),
        "approval": approval_body(approval) if approval is not None else None,
    }
    return Answer(body)
