"""Four-eyes rules, pure: a request is approved or rejected once, and never by the person who made it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from registry.errors import Conflict, Forbidden, NotFound, RuleViolation
from registry.fields import Identifier, Reason
from registry.eventlog.model import NewEvent


class ApprovalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class ApprovalState(msgspec.Struct, kw_only=True, frozen=True):
    approval_id: str
    action: str
    payload: dict[str, Any]
    requested_by: str
    status: ApprovalStatus


class RequestApproval(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    action: Identifier
    """What should happen once approved, e.g. `calendar.publish`."""
    payload: dict[str, Any]
    """The action's own request, held to that action's types when it is requested."""
    reason: Reason


class Decide(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: Reason = ""


class UnknownAction(RuleViolation):
    code = "approval.unknown_action"
    title = "No such approvable action"


class PayloadInvalid(RuleViolation):
    code = "approval.payload_invalid"
    title = "The action's payload is not valid"


class ApprovalNotFound(NotFound):
    code = "approval.not_found"
    title = "No such approval request"


class SelfApprovalRefused(Forbidden):
    """四眼原则: the operator who requested an action can neither approve nor reject it."""

    code = "approval.self_approval"
    title = "A request must be decided by a second operator"


class AlreadyDecided(Conflict):
    code = "approval.already_decided"
    title = "This request was already decided"


class ReasonRequired(RuleViolation):
    code = "approval.reason_required"
    title = "A reason is required"


def decide_request(approval_id: str, requested_by: str, cmd: RequestApproval, known_actions: set[str]) -> list[NewEvent]:
    if cmd.action not in known_actions:
        raise UnknownAction(f"{cmd.action!r} is not an approvable action", action=cmd.action,
                            known_actions=sorted(known_actions))
    if not cmd.reason.strip():
        raise ReasonRequired("say why this action is requested")
    return [NewEvent(type="approval.requested", data={
        "approval_id": approval_id, "action": cmd.action, "payload": cmd.payload, "reason": cmd.reason,
        "requested_by": requested_by,
    })]


def _check_decidable(state: ApprovalState, decider: str) -> None:
    if state.status is not ApprovalStatus.pending:
        raise AlreadyDecided(f"request {state.approval_id} is already {state.status}", status=str(state.status))
    if decider == state.requested_by:
        raise SelfApprovalRefused(f"{decider} requested this action; a second operator must decide it",
                                  requested_by=state.requested_by)


def decide_approve(state: ApprovalState, approver: str, cmd: Decide) -> list[NewEvent]:
    _check_decidable(state, approver)
    return [NewEvent(type="approval.approved", data={
        "approval_id": state.approval_id, "action": state.action, "approved_by": approver,
        "requested_by": state.requested_by, "reason": cmd.reason,
    })]


def decide_reject(state: ApprovalState, rejecter: str, cmd: Decide) -> list[NewEvent]:
    _check_decidable(state, rejecter)
    if not cmd.reason.strip():
        raise ReasonRequired("say why the request is rejected")
    return [NewEvent(type="approval.rejected", data={
        "approval_id": state.approval_id, "action": state.action, "rejected_by": rejecter,
        "requested_by": state.requested_by, "reason": cmd.reason,
    })]
