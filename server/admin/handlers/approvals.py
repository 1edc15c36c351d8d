"""Approvals: the queue, and the decisions (maker-checker: nobody decides their own request)."""

from __future__ import annotations

from typing import Any

from certplane.policy.rbac import Permission
from certplane.server.admin.endpoints import API, Answer, ApiCall, QueryParam
from certplane.server.admin.lineage import decider_of
from certplane.server.admin.problems import ApiProblem, ApiProblemType, conflict, not_found
from certplane.server.admin.schemas import (
    NULLABLE_STRING,
    NULLABLE_TIMESTAMP,
    PAGE_PARAMS,
    STRING,
    TIMESTAMP,
    next_time_cursor,
    obj,
    page_of,
    time_cursor,
)
from certplane.server.ra.approval_records import approval_json
from certplane.server.ra.approvals import ApprovalError
from certplane.server.storage.repos.approvals import Approval, ApprovalStatus

APPROVAL: dict[str, Any] = obj(
    [
        "id",
        "kind",
        "object_id",
        "status",
        "rule",
        "policy_version",
        "requested_by",
        "summary",
        "decided_by",
        "reason",
        "created_at",
        "deadline",
        "decided_at",
    ],
    {
        "id": STRING,
        "kind": {"enum": ["order", "policy"]},
        "object_id": STRING,
        "status": {"enum": [s.value for s in ApprovalStatus]},
        "rule": STRING,
        "policy_version": {"type": ["integer", "null"]},
        "requested_by": STRING,
        "summary": {"type": "object"},
        "decided_by": NULLABLE_STRING,
        "reason": NULLABLE_STRING,
        "created_at": TIMESTAMP,
        "deadline": TIMESTAMP,
        "decided_at": NULLABLE_TIMESTAMP,
    },
)


def approval_body(approval: Approval) -> dict[str, Any]:
    return approval_json(approval)


@API.route(
    "GET",
    "/tenants/{tenant}/approvals",
    operation_id="listApprovals",
    permission=Permission.APPROVALS_READ,
    summary="Approval requests, oldest first (filter by status, e.g. the pending queue)",
    response=page_of(APPROVAL),
    query=(
        QueryParam("status", {"enum": [s.value for s in ApprovalStatus]}, "only this status"),
        *PAGE_PARAMS,
    ),
    tag="approvals",
)
async def list_approvals(call: ApiCall) -> Answer:
    limit = call.query["limit"]
    status = ApprovalStatus(call.query["status"]) if "status" in call.query else None
    after = time_cursor(call.query.get("cursor"))
    async with call.services.uow.begin(call.scope, write=False) as tx:
        rows = await tx.approvals.page(status=status, after=after, limit=limit + 1)
    keyed = [{"created_at": a.created_at, "id": a.id, "approval": a} for a in rows]
    page, cursor = next_time_cursor(keyed, limit)
    return Answer({"items": [approval_body(r["approval"]) for r in page], "next_cursor": cursor})


@API.route(
    "GET",
    "/tenants/{tenant}/approvals/{approval}",
    operation_id="getApproval",
    permission=Permission.APPROVALS_READ,
    summary="One approval request",
    response=APPROVAL,
    tag="approvals",
)
async def get_approval(call: ApiCall) -> Answer:
    async with call.services.uow.begin(call.scope, write=False) as tx:
        approval = await tx.approvals.get(call.path("approval"))
    if approval is None:
        raise not_found("approval")
    return Answer(approval_body(approval))


async def _decide(call: ApiCall, *, approve: bool) -> Answer:
    assert call.tenant is not None
    reason = call.body.get("reason") if call.body else None
    decider = await decider_of(call)
    try:
        approval = await call.services.approvals.decide(
            call.tenant, call.path("approval"), decider, approve=approve, reason=reason
        )
    except ApprovalError as exc:
        raise _problem(exc) from None
    return Answer(approval_body(approval))


def _problem(exc: ApprovalError) -> ApiProblem:
    if exc.kind == "not-found":
        return not_found("approval")
    if exc.kind == "conflict":
        return conflict(exc.detail)
    if exc.kind == "separation-of-duties":
        return ApiProblem(ApiProblemType.SEPARATION_OF_DUTIES, exc.detail)
    return ApiProblem(ApiProblemType.FORBIDDEN, exc.detail)


DECISION = obj([], {"reason": {"type": "string", "maxLength": 1000}})


@API.route(
    "POST",
    "/tenants/{tenant}/approvals/{approval}/approve",
    operation_id="approve",
    permission=Permission.APPROVALS_DECIDE,
    summary="Approve: a held order is issued, a pending policy version comes into force",
    description="Orders are decided by approvers, policy changes by tenant-admins; never by "
    "the principal who asked, nor with a token that principal minted.",
    request=DECISION,
    response=APPROVAL,
    tag="approvals",
)
async def approve(call: ApiCall) -> Answer:
    return await _decide(call, approve=True)


@API.route(
    "POST",
    "/tenants/{tenant}/approvals/{approval}/reject",
    operation_id="reject",
    permission=Permission.APPROVALS_DECIDE,
    summary="Reject: a held order becomes invalid (unauthorized, with the reason)",
    request=obj(["reason"], {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}}),
    response=APPROVAL,
    tag="approvals",
)
async def reject(call: ApiCall) -> Answer:
    return await _decide(call, approve=False)
