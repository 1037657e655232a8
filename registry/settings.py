"""One frozen settings object, read from the environment (REGISTRY_* and DATABASE_URL).

Each setting's environment variable, default and meaning are written once, on its field; the
README's configuration table is rendered from them (`registry settings`), so the two cannot drift.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from registry.parties.qualification import QualificationThresholds


def setting(meaning: str, *, env: str | None = None, default: str | None = None, **constraints: Any) -> msgspec.Meta:
    """A setting's documentation on its field: what it means; its environment variable when not
    REGISTRY_<NAME>; how its default reads in the table when not the value itself; and any bounds."""
    extra = {key: value for key, value in (("env", env), ("default", default)) if value is not None}
    return msgspec.Meta(description=meaning, extra=extra, **constraints)


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Everything the service can be told; defaults run a local market on an embedded PostgreSQL."""

    data_dir: Annotated[Path, setting(
        "data folder: the embedded PostgreSQL cluster (reachable only over a Unix socket in a private folder, by "
        "the operating-system user running the service: peer authentication, no password) and generated keys "
        "(also `--data-dir`)",
        default="`./var`")] = Path("var")
    database_url: Annotated[str | None, setting(
        "DSN the service connects with — the `registry_app` role, which may only INSERT and SELECT history. It "
        "may list several hosts (`postgresql://h1:5432,h2:5432/registry?target_session_attrs=read-write`): after "
        "a failover the service reconnects to whichever is the primary",
        env="DATABASE_URL", default="unset: embedded PostgreSQL in the data folder")] = None
    database_read_url: Annotated[str | None, setting(
        "DSN of PostgreSQL streaming replicas that serve reads (CloudNativePG's `-ro` service; several hosts "
        "with `target_session_attrs=prefer-standby` work too). A read sent with `Min-Position: <n>` (a write's "
        "`log.last_position`) is answered by a replica only once it has replayed that far, otherwise by the "
        "primary; a replica that cannot be reached is skipped. Writes and the decisions they rest on always "
        "use the primary",
        env="DATABASE_READ_URL", default="unset: every read goes to the primary")] = None
    read_replica_wait_seconds: Annotated[float, setting(
        "longest a read with `Min-Position` waits for a replica to catch up before the primary answers it",
        ge=0)] = 0.5
    database_owner_url: Annotated[str | None, setting(
        "DSN of the schema owner, used only to apply migrations",
        env="DATABASE_OWNER_URL", default="`DATABASE_URL`")] = None
    app_password: Annotated[str | None, setting(
        "password `registry migrate` sets on the `registry_app` role (external servers)")] = None
    token_key: Annotated[str | None, setting(
        "PEM Ed25519 private key signing bearer tokens (and, derived from it, the pages' sign-in forms)",
        default="generated in the data folder")] = None
    checkpoint_key: Annotated[str | None, setting(
        "PEM Ed25519 private key signing tree heads (checkpoints)", default="generated in the data folder")] = None
    checkpoint_interval_seconds: Annotated[float, setting(
        "how often a grown log gets a new signed checkpoint", gt=0)] = 60.0
    market_name: Annotated[str, setting("the market's name, shown when the service starts")] = \
        "Tianjin OTC 天津滨海柜台交易市场"
    market_origin: Annotated[str, setting(
        "the log's origin line in signed checkpoints (C2SP signed note); verifiers expect it")] = \
        "registry.tjotc.example/log"
    province_prefix: Annotated[str, setting(
        "only enterprises whose 统一社会信用代码 division code starts with this are served (12 = Tianjin)")] = "12"
    qualification_thresholds: Annotated[QualificationThresholds, setting(
        "合格投资者 thresholds as JSON, e.g. `{\"natural_person_min_financial_assets_fen\": 50000000}`; "
        "the figures in force are at `GET /qualification-thresholds`",
        default="RMB 500k financial assets and 2 years' experience (natural person), RMB 1m net assets "
                "(institution)")] = QualificationThresholds()
    holder_cap_basis: Annotated[Literal["cumulative", "current"], setting(
        "how a series' 200-holder cap counts: `cumulative` (累计, every holder ever) or `current` (holders now)"
    )] = "cumulative"
    holding_interval_trading_days: Annotated[int, setting(
        "trading days a holder keeps warrants before the opposite trade (持有间隔)", ge=0)] = 5
    holding_interval_t_plus_allowed: Annotated[bool, setting(
        "whether the opposite trade may happen on the last day of that interval itself (T+5) or only after")] = True
    clock: Annotated[dt.datetime | None, setting(
        "the market's clock: an ISO 8601 moment (`2026-11-26T10:00+08:00`; no offset: Tianjin time) where it "
        "starts and runs on — a training or test market standing on a chosen business day",
        default="unset: the system clock")] = None
    expiry_sweep_seconds: Annotated[float, setting(
        "how often series whose exercise window has closed are expired", gt=0)] = 60.0
    valuation_stale_after_days: Annotated[int, setting(
        "positions whose latest valuation is older than this are flagged stale", ge=0)] = 90
    pool_min_size: Annotated[int, setting("fewest database connections kept open", ge=1)] = 2
    pool_max_size: Annotated[int, setting("most database connections open at once", ge=1)] = 10
    max_batch: Annotated[int, setting(
        "most commands the single writer commits in one transaction (group commit)", ge=1)] = 256
    max_body_bytes: Annotated[int, setting("larger request bodies are refused with 413", ge=1)] = 1_048_576
    embedded_max_restarts: Annotated[int, setting(
        "`registry serve` restarts an embedded PostgreSQL that dies at most this many times within "
        "`REGISTRY_EMBEDDED_RESTART_WINDOW_SECONDS`, then exits with status 3", ge=0)] = 5
    embedded_restart_window_seconds: Annotated[float, setting(
        "the window over which embedded PostgreSQL restarts are counted", gt=0)] = 600.0
    page_limit_max: Annotated[int, setting("most items one page of a list returns (`?limit=`)", ge=1)] = 500
    behind_tls: Annotated[bool, setting(
        "browsers reach the service only over HTTPS (a TLS-terminating proxy in front): page cookies are "
        "always marked Secure")] = False
    trust_proxy_headers: Annotated[bool, setting(
        "honour `X-Forwarded-Proto` and `X-Forwarded-For` from the proxy in front; set it only when every "
        "request comes through that proxy")] = False
    metrics_token: Annotated[str | None, setting(
        "bearer token a Prometheus scrape of `/metrics` must send", default="unset: `/metrics` is anonymous")] = None
    migrations_path: Annotated[Path | None, setting(
        "folder of migrations to apply", default="the ones shipped with the package")] = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for doc in documented():
            raw = env.get(doc.env, "")
            if raw != "":
                values[doc.name] = _parse(doc, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(values, cls, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError as exc:
            raise SettingsError(_name_the_variable(str(exc))) from None

    @property
    def owner_url(self) -> str | None:
        return self.database_owner_url or self.database_url

    def resolved_migrations_path(self) -> Path:
        if self.migrations_path is not None:
            return self.migrations_path
        packaged = Path(__file__).parent / "_migrations"
        if packaged.is_dir():
            return packaged
        return Path(__file__).resolve().parent.parent / "migrations"


class SettingsError(ValueError):
    """A setting's value cannot be used; the message names the environment variable."""


class SettingDoc(msgspec.Struct, kw_only=True, frozen=True):
    """One row of the configuration table."""

    name: str
    env: str
    default: str
    meaning: str


def documented() -> list[SettingDoc]:
    """Every setting with its environment variable, default and meaning, in declaration order."""
    hints = typing.get_type_hints(Settings, include_extras=True)
    rows = []
    for field in msgspec.structs.fields(Settings):
        meta = next((m for m in getattr(hints[field.name], "__metadata__", ()) if isinstance(m, msgspec.Meta)), None)
        if meta is None or not meta.description:
            raise TypeError(f"setting {field.name} has no meaning written on it: use setting(...)")
        extra = meta.extra or {}
        rows.append(SettingDoc(name=field.name, env=extra.get("env", f"REGISTRY_{field.name.upper()}"),
                               default=extra.get("default", _shown(field.default)), meaning=meta.description))
    return rows


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{doc.env}` | {doc.default} | {doc.meaning} |" for doc in documented()]
    return "\n".join(lines) + "\n"


TABLE_BEGIN = "<!-- settings table: generated from registry/settings.py by `registry settings`; edit it there -->"
TABLE_END = "<!-- end of settings table -->"


def with_table(document: str) -> str:
    """`document` (the README) with the text between the table's markers replaced by the current table."""
    pattern = re.compile(re.escape(TABLE_BEGIN) + r"\n.*?" + re.escape(TABLE_END), re.S)
    if not pattern.search(document):
        raise ValueError(f"the document has no settings table markers ({TABLE_BEGIN} … {TABLE_END})")
    return pattern.sub(lambda _: f"{TABLE_BEGIN}\n{markdown_table()}{TABLE_END}", document, count=1)


def _shown(default: object) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "`1`" if default else "`0`"
    return f"`{default}`"


def _parse(doc: SettingDoc, raw: str) -> object:
    """Structured settings come as JSON, the clock as ISO 8601 (seconds optional); the rest as text
    msgspec converts (booleans: 1/0, true/false)."""
    if doc.name == "clock":
        try:
            return dt.datetime.fromisoformat(raw)
        except ValueError:
            raise SettingsError(f"{doc.env} is an ISO 8601 moment, e.g. 2026-11-26T10:00+08:00; got {raw!r}") from None
    if doc.name != "qualification_thresholds":
        return raw
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise SettingsError(f"{doc.env} is JSON: {exc}") from None


def _name_the_variable(message: str) -> str:
    """msgspec says `… - at `$.max_batch``: name the environment variable instead."""
    by_name = {doc.name: doc.env for doc in documented()}
    match = re.search(r"at `\$\.(\w+)", message)
    if match and match.group(1) in by_name:
        hint = " (write 1 or 0)" if "`bool`" in message else ""
        return f"{by_name[match.group(1)]}: {message.split(' - at ')[0]}{hint}"
    return message


def _decode_path(type_: type, obj: object) -> object:
    if type_ is Path and isinstance(obj, (str, Path)):
        return Path(obj)
    raise NotImplementedError
