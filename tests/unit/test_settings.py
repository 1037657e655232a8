"""Settings: each one's variable, default and meaning written once, the README's table rendered from them,
and a value the service cannot use refused by the name of its variable."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from registry.settings import Settings, SettingsError, documented, with_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_configuration_table_is_the_one_the_settings_render() -> None:
    text = README.read_text(encoding="utf-8")
    assert text == with_table(text), "the README's settings table is stale: run `registry settings --readme README.md`"


def test_every_setting_has_its_own_variable_and_a_meaning() -> None:
    rows = documented()
    assert [r.name for r in rows] == [f.name for f in msgspec.structs.fields(Settings)]
    assert len({r.env for r in rows}) == len(rows)
    assert all(r.env.startswith(("REGISTRY_", "DATABASE_")) and r.meaning and r.default for r in rows)


def test_each_setting_is_read_from_the_variable_the_table_names() -> None:
    settings = Settings.from_env({
        "REGISTRY_HOLDING_INTERVAL_TRADING_DAYS": "3", "REGISTRY_HOLDING_INTERVAL_T_PLUS_ALLOWED": "0",
        "REGISTRY_HOLDER_CAP_BASIS": "current", "DATABASE_OWNER_URL": "postgresql://owner@db/registry",
        "REGISTRY_QUALIFICATION_THRESHOLDS": '{"natural_person_min_financial_assets_fen": 30000000}',
        "REGISTRY_BEHIND_TLS": "true", "REGISTRY_DATA_DIR": "/srv/registry"})
    assert (settings.holding_interval_trading_days, settings.holding_interval_t_plus_allowed) == (3, False)
    assert settings.holder_cap_basis == "current" and settings.owner_url == "postgresql://owner@db/registry"
    assert settings.qualification_thresholds.natural_person_min_financial_assets_fen == 30_000_000
    assert settings.behind_tls is True and settings.data_dir == Path("/srv/registry")
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("variable, value", [
    ("REGISTRY_MAX_BATCH", "0"), ("REGISTRY_HOLDER_CAP_BASIS", "sometimes"), ("REGISTRY_BEHIND_TLS", "maybe"),
    ("REGISTRY_QUALIFICATION_THRESHOLDS", "{not json"), ("REGISTRY_POOL_MAX_SIZE", "ten"),
    ("REGISTRY_QUALIFICATION_THRESHOLDS", '{"institution_min_net_assets_fen": -1}'),
])
def test_a_value_the_service_cannot_use_is_refused_naming_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})
