"""One frozen settings object, read from the environment (REGISTRY_* and DATABASE_URL)."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from registry.parties.qualification import QualificationThresholds


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Everything the service can be told; defaults run a local market on an embedded PostgreSQL."""

    data_dir: Path = Path("var")
    """Data folder: the embedded PostgreSQL cluster and generated keys live here."""
    database_url: str | None = None
    """DSN the service uses (the least-privileged application role). Unset: embedded server."""
    database_owner_url: str | None = None
    """DSN of the schema owner, used only to apply migrations. Defaults to database_url."""
    app_password: str | None = None
    """Password set on the application role by `registry migrate` (external servers)."""
    token_key: str | None = None
    """PEM Ed25519 private key signing bearer tokens; unset: generated in the data folder."""
    checkpoint_key: str | None = None
    """PEM Ed25519 private key signing tree heads (checkpoints); unset: generated in the data folder."""
    checkpoint_interval_seconds: float = 60.0
    """How often a grown log gets a new signed checkpoint."""
    market_name: str = "Tianjin OTC 天津滨海柜台交易市场"
    market_origin: str = "registry.tjotc.example/log"
    province_prefix: str = "12"
    """Only enterprises whose USCC division code starts with this are served (12 = Tianjin)."""
    qualification_thresholds: QualificationThresholds = QualificationThresholds()
    """合格投资者 thresholds (JSON in REGISTRY_QUALIFICATION_THRESHOLDS overrides the brief's defaults)."""
    holder_cap_basis: str = "cumulative"
    """How the 200-holder cap counts (累计): `cumulative` (every holder ever) or `current`."""
    holding_interval_trading_days: int = 5
    holding_interval_t_plus_allowed: bool = True
    """Whether the opposite trade may happen on the 5th trading day itself (T+5) or only after."""
    expiry_sweep_seconds: float = 60.0
    valuation_stale_after_days: int = 90
    """Positions whose latest valuation is older than this are flagged stale."""
    pool_min_size: int = 2
    pool_max_size: int = 10
    max_batch: int = 256
    """Most commands the single writer commits in one transaction (group commit)."""
    max_body_bytes: int = 1_048_576
    embedded_max_restarts: int = 5
    embedded_restart_window_seconds: float = 600.0
    """`registry serve` restarts an embedded PostgreSQL that dies at most this many times within this
    window, then exits non-zero."""
    page_limit_max: int = 500
    migrations_path: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        for name in fields:
            key = "DATABASE_URL" if name == "database_url" else f"REGISTRY_{name.upper()}"
            if name == "database_owner_url" and "DATABASE_OWNER_URL" in env:
                key = "DATABASE_OWNER_URL"
            if key in env and env[key] != "":
                values[name] = msgspec.json.decode(env[key]) if name == "qualification_thresholds" else env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(values, cls, strict=False, dec_hook=_decode_path)

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


def _decode_path(type_: type, obj: object) -> object:
    if type_ is Path and isinstance(obj, (str, Path)):
        return Path(obj)
    raise NotImplementedError
