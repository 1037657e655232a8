"""Piccolo's configuration module: `DB` is bound to the engine migrations run on (see migrate.py)."""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.base import Engine

DB: Engine | None = None
APP_REGISTRY = AppRegistry(apps=[])
