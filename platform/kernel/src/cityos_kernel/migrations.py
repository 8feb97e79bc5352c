"""Shared body of every layer's Alembic ``env.py``.

Each layer that owns tables keeps its own migration history (its own ``versions/`` and its
own version table, ``alembic_version_<layer>``), so layers can be upgraded and released
independently. Their ``env.py`` files are two lines: ``from cityos_kernel.migrations
import run_env; run_env()``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool


def version_table(history: str) -> str:
    """The Alembic version table of one migration history."""
    return f"alembic_version_{history}"


def run_env() -> None:
    """Run the migrations of the history Alembic is pointed at (online mode only)."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    history = config.get_main_option("cityos.history")
    if not url or not history:
        raise RuntimeError("cityos migrations are run by `cityos db upgrade`, not by alembic")
    if context.is_offline_mode():
        context.configure(url=url, version_table=version_table(history), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=version_table(history))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
