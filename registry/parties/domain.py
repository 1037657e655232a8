"""Parties and accounts, the pure rules: enterprises, investors, securities accounts, 合格投资者 status.

Each `decide_*` function takes the current state (or None) and a command, and returns the events
to append or raises a domain error. No I/O here.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from registry.errors import Conflict, NotFound, RuleViolation
from registry.fields import Count, Digest, Fen, Identifier, Name, Reason, Reference, SignedFen
from registry.eventlog.model import NewEvent
from registry.parties.qualification import (
    Assessment,
    QualificationCategory,
    QualificationError,
    QualificationStatus,
    QualificationThresholds,
    assess_institution,
    assess_natural_person,
)
from registry.parties.uscc import UsccError, validate_uscc

# -- vocabulary -----------------------------------------------------------------------------


class LegalForm(StrEnum):
    llc = "llc"                  # 有限责任公司: underlying is registered capital
    joint_stock = "joint_stock"  # 股份有限公司: underlying is shares


class SpecialisedLevel(StrEnum):
    """专精特新 recognition."""

    none = "none"
    innovative_sme = "innovative_sme"    # 创新型中小企业
    provincial = "provincial"            # 省级专精特新中小企业
    little_giant = "little_giant"        # 国家级专精特新"小巨人"


class EnterpriseStatus(StrEnum):
    registered = "registered"  # 已登记: the only status an enterprise record has today


class InvestorKind(StrEnum):
    natural_person = "natural_person"  # 自然人
    institution = "institution"        # 机构 (法人、合伙企业、金融机构及其产品)


class AccountKind(StrEnum):
    ordinary = "ordinary"  # 普通账户
    nominee = "nominee"    # 名义持有账户: beneficial owners are looked through (穿透)


class AccountStatus(StrEnum):
    open = "open"
    frozen = "frozen"
    closed = "closed"


class FreezeBasis(StrEnum):
    court_order = "court_order"  # 司法冻结
    regulator = "regulator"      # 监管要求


# -- errors ---------------------------------------------------------------------------------


class InvalidUscc(RuleViolation):
    """统一社会信用代码 fails GB 32100-2015 (length, alphabet, check character) or the province rule."""

    code = "enterprise.uscc_invalid"
    title = "The 统一社会信用代码 (USCC) is not valid"

    def __init__(self, error: UsccError) -> None:
        super().__init__(error.detail, **dict(error.figures))
        self.code = error.code  # the precise rule: uscc.length, uscc.check_character, uscc.province, ...


class EnterpriseAlreadyRegistered(Conflict):
    code = "enterprise.already_registered"
    title = "This enterprise is already registered"


class EnterpriseNotFound(NotFound):
    code = "enterprise.not_found"
    title = "No such enterprise"


class InvestorNotFound(NotFound):
    code = "investor.not_found"
    title = "No such investor"


class AccountNotFound(NotFound):
    code = "account.not_found"
    title = "No such account"


class NomineeNeedsBeneficialOwners(RuleViolation):
    """A 名义持有 account must name the real people behind it, so holder counts can look through it."""

    code = "account.nominee_without_beneficial_owners"
    title = "A nominee account must list its beneficial owners"


class BeneficialOwnersOnlyForNominees(RuleViolation):
    code = "account.beneficial_owners_not_allowed"
    title = "Only nominee accounts list beneficial owners"


class AccountStateRefused(RuleViolation):
    """Freeze only an open account, thaw only a frozen one, close only an open, empty one."""

    code = "account.state_refuses_action"
    title = "The account's status does not allow this"


class AccountNotEmpty(RuleViolation):
    code = "account.not_empty"
    title = "Only an empty account can be closed"


class InvalidQualification(RuleViolation):
    code = "qualification.invalid"
    title = "The qualified-investor status is not valid"

    def __init__(self, error: QualificationError) -> None:
        super().__init__(error.detail, **dict(error.figures))
        self.code = error.code


class QualificationNotFound(NotFound):
    code = "qualification.not_found"
    title = "No such qualified-investor status"


class QualificationAlreadyRevoked(RuleViolation):
    code = "qualification.already_revoked"
    title = "This status was already revoked"


# -- commands -------------------------------------------------------------------------------


class RegisterEnterprise(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    uscc: Identifier
    name: Name
    legal_form: LegalForm
    registered_capital_fen: Fen
    industry: Name
    specialised_level: SpecialisedLevel = SpecialisedLevel.none


class RegisterInvestor(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    kind: InvestorKind
    name: Name
    identity_document_digest: Digest
    """SHA-256 of the ID card or business licence copy; the registry keeps digests, not documents."""


class OpenAccount(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    kind: AccountKind = AccountKind.ordinary
    beneficial_owners: Annotated[list[Identifier], msgspec.Meta(max_length=200)] = []


class FreezeAccount(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    basis: FreezeBasis
    document_ref: Reference
    document_digest: Digest | None = None
    reason: Reason


class ThawAccount(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    document_ref: Reference
    reason: Reason


class CloseAccount(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: Reason


class QualificationFigures(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The evidenced figures the thresholds are tested against (money in fen)."""

    financial_assets_fen: Fen | None = None
    average_income_3y_fen: Fen | None = None
    investment_experience_years: Count | None = None
    net_assets_fen: SignedFen | None = None


class GrantQualification(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    category: QualificationCategory
    evidence_digest: Digest
    valid_from: dt.date
    valid_until: dt.date | None = None
    figures: QualificationFigures | None = None
    """Required for natural persons and for institutions qualifying by net assets."""


class ThresholdsNotMet(RuleViolation):
    """合格投资者 thresholds not met: every criterion is listed with its figure and threshold."""

    code = "qualification.thresholds_not_met"
    title = "The investor does not meet the qualified-investor thresholds"


class FiguresRequired(RuleViolation):
    code = "qualification.figures_required"
    title = "This category is granted on evidenced figures"


class RevokeQualification(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    revoked_on: dt.date
    reason: Reason


# -- state ----------------------------------------------------------------------------------


class AccountState(msgspec.Struct, kw_only=True, frozen=True):
    account_id: str
    investor_id: str
    kind: AccountKind
    status: AccountStatus


def _event(type_: str, data: Any, effective_date: dt.date | None = None) -> NewEvent:
    return NewEvent(type=type_, data=msgspec.to_builtins(data, order="sorted"), effective_date=effective_date)


class EmptyField(RuleViolation):
    code = "request.field_empty"
    title = "A required text field is empty"


class DigestInvalid(RuleViolation):
    """Documents are referenced by their SHA-256 digest (64 lowercase hex characters)."""

    code = "document.digest_invalid"
    title = "A document digest is not a SHA-256 digest"


class RegisteredCapitalInvalid(RuleViolation):
    code = "enterprise.registered_capital_invalid"
    title = "Registered capital must be positive"


def _require_text(name: str, value: str) -> None:
    if not value.strip():
        raise EmptyField(f"{name} must not be empty", field=name)


def require_digest(name: str, value: str) -> None:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise DigestInvalid(f"{name} must be a SHA-256 digest: 64 lowercase hexadecimal characters",
                            field=name, length=len(value))


# -- decisions ------------------------------------------------------------------------------


def decide_register_enterprise(exists: bool, cmd: RegisterEnterprise, *, province_prefix: str) -> list[NewEvent]:
    """挂牌企业登记: a valid USCC registered in the market's own province, once."""
    try:
        validate_uscc(cmd.uscc, province_prefix=province_prefix)
    except UsccError as exc:
        raise InvalidUscc(exc) from None
    if exists:
        raise EnterpriseAlreadyRegistered(f"enterprise {cmd.uscc} is already registered", uscc=cmd.uscc)
    _require_text("name", cmd.name)
    _require_text("industry", cmd.industry)
    if cmd.registered_capital_fen <= 0:
        raise RegisteredCapitalInvalid("registered capital must be positive",
                                       registered_capital_fen=cmd.registered_capital_fen)
    return [_event("enterprise.registered", cmd)]


def decide_register_investor(investor_id: str, cmd: RegisterInvestor) -> list[NewEvent]:
    _require_text("name", cmd.name)
    require_digest("identity_document_digest", cmd.identity_document_digest)
    return [_event("investor.registered", {"investor_id": investor_id, **msgspec.to_builtins(cmd)})]


def decide_open_account(account_id: str, investor_id: str, cmd: OpenAccount,
                        known_investors: set[str]) -> list[NewEvent]:
    """开户. A nominee account (名义持有) names its beneficial owners, each a registered investor."""
    if cmd.kind is AccountKind.nominee and not cmd.beneficial_owners:
        raise NomineeNeedsBeneficialOwners("a nominee account needs at least one beneficial owner")
    if cmd.kind is AccountKind.ordinary and cmd.beneficial_owners:
        raise BeneficialOwnersOnlyForNominees("an ordinary account belongs to its investor alone")
    unknown = sorted(set(cmd.beneficial_owners) - known_investors)
    if unknown:
        raise InvestorNotFound("beneficial owners must be registered investors", unknown_investors=unknown)
    data = {"account_id": account_id, "investor_id": investor_id, "kind": cmd.kind,
            "beneficial_owners": sorted(set(cmd.beneficial_owners))}
    return [_event("account.opened", data)]


def decide_freeze_account(account: AccountState, cmd: FreezeAccount, today: dt.date) -> list[NewEvent]:
    """冻结: on a court order or a regulator's demand, with the document it rests on."""
    if account.status is not AccountStatus.open:
        raise AccountStateRefused(f"account {account.account_id} is {account.status}; only an open account can be "
                                  "frozen", account_status=str(account.status), allowed_statuses=["open"])
    _require_text("document_ref", cmd.document_ref)
    _require_text("reason", cmd.reason)
    if cmd.document_digest is not None:
        require_digest("document_digest", cmd.document_digest)
    return [_event("account.frozen", {"account_id": account.account_id, **msgspec.to_builtins(cmd)}, today)]


def decide_thaw_account(account: AccountState, cmd: ThawAccount, today: dt.date) -> list[NewEvent]:
    """解冻."""
    if account.status is not AccountStatus.frozen:
        raise AccountStateRefused(f"account {account.account_id} is {account.status}; only a frozen account can be "
                                  "thawed", account_status=str(account.status), allowed_statuses=["frozen"])
    _require_text("document_ref", cmd.document_ref)
    return [_event("account.thawed", {"account_id": account.account_id, **msgspec.to_builtins(cmd)}, today)]


def decide_close_account(account: AccountState, cmd: CloseAccount, units_held: int, today: dt.date) -> list[NewEvent]:
    """销户: only an open account that holds nothing."""
    if account.status is not AccountStatus.open:
        raise AccountStateRefused(f"account {account.account_id} is {account.status}; only an open account can be "
                                  "closed", account_status=str(account.status), allowed_statuses=["open"])
    if units_held:
        raise AccountNotEmpty(f"account {account.account_id} still holds {units_held} units",
                              units_held=units_held)
    return [_event("account.closed", {"account_id": account.account_id, "reason": cmd.reason}, today)]


def assess(cmd: GrantQualification, thresholds: QualificationThresholds) -> Assessment | None:
    """Test the figures against the thresholds in force; financial institutions qualify by licence."""
    f = cmd.figures
    try:
        if cmd.category is QualificationCategory.NATURAL_PERSON:
            if f is None or f.financial_assets_fen is None or f.investment_experience_years is None:
                raise FiguresRequired("a natural person is qualified on financial assets and investment experience",
                                      required=["financial_assets_fen", "investment_experience_years"])
            return assess_natural_person(f.financial_assets_fen, f.average_income_3y_fen,
                                         f.investment_experience_years, thresholds)
        if cmd.category is QualificationCategory.INSTITUTION_NET_ASSETS:
            if f is None or f.net_assets_fen is None:
                raise FiguresRequired("an institution is qualified on its net assets", required=["net_assets_fen"])
            return assess_institution(f.net_assets_fen, thresholds)
    except QualificationError as exc:
        raise InvalidQualification(exc) from None
    return None


def decide_grant_qualification(investor_id: str, sequence: int, cmd: GrantQualification,
                               thresholds: QualificationThresholds) -> list[NewEvent]:
    """合格投资者认定: category, evidence by digest, validity window, and the thresholds met."""
    try:
        QualificationStatus(investor_id=investor_id, category=cmd.category, evidence_digest=cmd.evidence_digest,
                            valid_from=cmd.valid_from, valid_until=cmd.valid_until)
    except QualificationError as exc:
        raise InvalidQualification(exc) from None
    assessment = assess(cmd, thresholds)
    if assessment is not None and not assessment.qualified:
        raise ThresholdsNotMet("the figures do not meet the thresholds in force",
                               criteria=msgspec.to_builtins(assessment.criteria), basis=assessment.basis)
    data = {"investor_id": investor_id, "sequence": sequence, **msgspec.to_builtins(cmd),
            "assessment": None if assessment is None else msgspec.to_builtins(assessment)}
    return [_event("qualification.granted", data, cmd.valid_from)]


def decide_revoke_qualification(status: QualificationStatus | None, investor_id: str, sequence: int,
                                cmd: RevokeQualification) -> list[NewEvent]:
    if status is None:
        raise QualificationNotFound(f"investor {investor_id} has no status {sequence}", sequence=sequence)
    if status.revoked_on is not None:
        raise QualificationAlreadyRevoked(f"status {sequence} was revoked on {status.revoked_on}",
                                          revoked_on=status.revoked_on.isoformat())
    _require_text("reason", cmd.reason)
    return [_event("qualification.revoked", {"investor_id": investor_id, "sequence": sequence,
                                             **msgspec.to_builtins(cmd)}, cmd.revoked_on)]
