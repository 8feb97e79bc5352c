"""Database URL handling shared by every layer that talks to PostgreSQL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: The driver the platform uses (psycopg2; SQLAlchemy 2.1 would otherwise pick psycopg 3).
DRIVER = "postgresql+psycopg2"


def sqlalchemy_url(url: str) -> str:
    """Turn ``postgresql://…`` (what operators write) into the SQLAlchemy URL with our driver."""
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql", "postgresql+psycopg2"}:
        return urlunsplit((DRIVER, *parts[1:]))
    raise ValueError(f"not a PostgreSQL URL (postgresql://…): scheme {parts.scheme!r}")


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy-style URL back into one libpq/psycopg2 accepts."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme.startswith("postgres") else parts.scheme
    return urlunsplit((scheme, *parts[1:]))
