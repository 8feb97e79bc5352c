"""The interoperability layer's own tables, in schema ``cityos_interop``.

Only what belongs to the API lives here (entities are the knowledge layer's, reached
through its facade). ``jsonld_contexts`` holds the @contexts clients asked the broker to
host (``POST /jsonldContexts``), per tenant; the default tenant is the empty string so the
key column is never NULL.
"""

from __future__ import annotations

from sqlalchemy import TIMESTAMP, BigInteger, Column, MetaData, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "cityos_interop"

#: ``tenant`` value of the default tenant.
DEFAULT_TENANT = ""

metadata = MetaData(schema=SCHEMA)

jsonld_contexts = Table(
    "jsonld_contexts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant", Text, nullable=False, server_default=text("''")),
    Column("document", JSONB, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("hits", BigInteger, nullable=False, server_default=text("0")),
    Column("last_used_at", TIMESTAMP(timezone=True), nullable=True),
)
