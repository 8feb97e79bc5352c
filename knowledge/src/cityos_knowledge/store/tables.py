"""The knowledge stores' tables (SQLAlchemy Core). Names here are a contract: keep them stable.

Two kinds of tables:

**Per-tenant tables** (:data:`metadata`, no schema). Every NGSI-LD tenant has its own
PostgreSQL schema (``cityos_knowledge.store.tenants`` creates it on first use and names it);
these tables are declared without a schema and bound to the tenant's schema at execution
time with ``connection.execution_options(schema_translate_map={None: schema})``. Build
queries against these objects; never write a schema name into SQL.

All attribute names and entity types are stored as the facade receives them: expanded IRIs
(the API expands terms with the request's ``@context``; the ingest expands the short names
of observations with the default vocabulary). The default attribute instance of an
attribute (no ``datasetId``) has ``dataset_id = '@none'`` (:data:`DEFAULT_DATASET`), so that
every key column is ``NOT NULL`` and plain unique indexes work.

``entities`` — one row per entity ever created in the tenant (current state):

- ``id`` text, primary key: the entity id (a URI).
- ``types`` text[]: the entity's types (expanded), at least one. GIN-indexed.
- ``scopes`` text[] or NULL: the entity's scopes (``/Madrid/Gardens``). GIN-indexed.
- ``created_at`` / ``modified_at`` timestamptz: system attributes createdAt / modifiedAt.
- ``deleted_at`` timestamptz or NULL: set when the entity was deleted through the context
  API; its attribute rows are then gone but the row (and its history) stays until the
  temporal entity is deleted. **Context queries must keep only live entities:**
  ``entities.c.deleted_at.is_(None)`` (:data:`LIVE_ENTITY`).
- ``entity`` jsonb: the whole expanded entity in normalized form (``id``, ``type`` list,
  ``scope`` list when present, and every attribute: one object, or an array of objects when
  the attribute has several datasetIds), without system attributes. Rebuilt from
  ``attributes`` by every write, so it always agrees with them. Retrieval reads it;
  filters use ``attributes``.

``attributes`` — one row per entity + attribute + datasetId, the current value:

- ``entity_id`` text: ``entities.id`` (no foreign key: writers create and lock the entity
  row first, and delete its attributes with it); ``name`` text: the expanded attribute
  name; ``dataset_id`` text (``'@none'`` for the default instance). Together the primary
  key.
- ``kind`` text: Property, Relationship, GeoProperty, LanguageProperty, VocabProperty,
  JsonProperty, ListProperty or ListRelationship.
- ``value`` jsonb: the attribute's main member whatever its kind — ``value`` (Property,
  GeoProperty as GeoJSON, ListProperty ``valueList``), ``object`` (Relationship, a string or
  a list), ``objectList`` (ListRelationship), ``languageMap``, ``vocab``, ``json``.
- ``value_number`` double precision: ``value`` when it is a JSON number (booleans excluded),
  else NULL. Indexed with ``name`` (partial index, non-NULL rows): use it for numeric
  comparisons and ranges.
- ``value_text`` text: ``value`` when it is a JSON string (a Relationship's object, a
  VocabProperty's vocab, a string Property, the ``@value`` of a typed literal such as a
  DateTime), else NULL. Its first :data:`TEXT_INDEX_PREFIX` characters are indexed with
  ``name`` (``attributes_name_text`` on ``(name, left(value_text, 256))``, so a string of
  any length fits the index): for string equality compare the prefixes too
  (:func:`text_index_prefix`) to use it.
- ``geometry`` geometry(Geometry, 4326): the GeoJSON value of a GeoProperty, else NULL.
  GiST-indexed (non-NULL rows). Selecting the column returns GeoJSON text; in filters use
  it with PostGIS functions (``func.ST_Intersects(attributes.c.geometry, ...)``).
- ``observed_at`` timestamptz, ``unit_code`` text: the attribute's observedAt / unitCode.
- ``body`` jsonb: the whole expanded attribute as NGSI-LD normalized JSON (type, the main
  member, observedAt, unitCode, datasetId, and its sub-attributes by name — e.g.
  ``body['accuracy']['value']`` for ``q=temperature.accuracy>1``), without system members.
- ``created_at`` / ``modified_at`` timestamptz: system attributes of the attribute.

``entity_locations`` — the geometries of ``attributes`` again, narrow, for ``near`` queries
(ADR 0064). One row per ``attributes`` row whose ``geometry`` is not NULL, kept by triggers
on ``attributes`` (:data:`LOCATION_SYNC`; a row without geometry, such as every numeric
reading, fires none of them):

- ``entity_id``, ``name``, ``dataset_id``: the key of the ``attributes`` row (primary key).
- ``geometry`` geometry(Geometry, 4326): the same value.
- ``position`` point or NULL: ``(longitude, latitude)`` when the geometry is a non-empty
  Point, else NULL. GiST-indexed with ``name`` and ``entity_id`` included, so a search box
  is answered by an index-only scan, without visiting one heap page per candidate.
  Other geometries have their own GiST index (``position IS NULL``).

Write ``attributes`` only; never write this table.

``attribute_instances`` — history, one row per attribute instance (never updated by the
ingest; a replayed instance is ignored):

- ``entity_id``, ``name``, ``dataset_id`` as in ``attributes`` (no foreign key: history
  outlives the current state of a deleted entity).
- ``observed_at`` timestamptz NOT NULL: the instance's observedAt, or the time it was written
  when it had none (then ``has_observed_at`` is false). The time dimension of the hypertable
  or the partition key. Unique with entity_id, name and dataset_id
  (``attribute_instances_key``), which makes replays idempotent.
- ``has_observed_at`` boolean: whether the instance carried an observedAt.
- ``created_at`` timestamptz: when the store wrote the instance (timeproperty createdAt).
- ``modified_at`` timestamptz or NULL: when the instance was last modified through the
  temporal API (timeproperty modifiedAt falls back to created_at).
- ``instance_id`` uuid: the NGSI-LD instanceId (``urn:ngsi-ld:attribute:instance:<uuid>``).
- ``kind`` text, ``unit_code`` text: as in ``attributes``.
- ``value_number`` double precision: the value when it is a number (what aggregations and the
  continuous aggregates use); then ``value`` is NULL.
- ``value`` jsonb: the main member when it is not a number (see ``attributes.value``).
- ``geometry`` geometry(Geometry, 4326): GeoProperty values.
- ``extras`` jsonb or NULL: every other member of the instance (sub-attributes, unitCode is
  in its own column) so the instance can be given back as it came.

With TimescaleDB, ``attribute_instances`` is a hypertable on ``observed_at``; without it, the
same table range-partitioned by month (``attribute_instances_pYYYYMM``), see
``cityos_knowledge.store.history``.

**Shared tables** (schema ``cityos_knowledge``, created by the Alembic history
``knowledge``):

``tenants`` — ``tenant`` (the NGSI-LD tenant name, primary key), ``schema_name`` (its
PostgreSQL schema), ``layout_version`` (which per-tenant layout the schema has; migrations
upgrade older ones), ``created_at``.

``store_settings`` — ``key`` / ``value`` / ``decided_at``: decisions taken at migration time
(``history_mode`` = ``timescaledb`` or ``partitioned``, ``history_detail`` the sentence shown
in ``/ready``, ``toolkit`` = ``on`` or ``off``).

``outbox`` — events written in the same transaction as the change they describe, published
by the relay after the commit: ``id`` bigserial (publication order), ``tenant``, ``topic``,
``key`` (the bus key, the entity id), ``envelope`` jsonb (the encoded envelope),
``created_at``. Every row is an event not yet published: the relay deletes rows in the
transaction that publishes them (ADR 0067).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import UserDefinedType

#: The schema of the tables every tenant shares (tenant registry, store settings, outbox).
SHARED_SCHEMA = "cityos_knowledge"

#: ``dataset_id`` of the default attribute instance (an attribute without datasetId).
DEFAULT_DATASET = "@none"

#: The NGSI-LD attribute types the stores know.
ATTRIBUTE_KINDS = (
    "Property",
    "Relationship",
    "GeoProperty",
    "LanguageProperty",
    "VocabProperty",
    "JsonProperty",
    "ListProperty",
    "ListRelationship",
)

_KIND_CHECK = "kind IN (" + ", ".join(f"'{kind}'" for kind in ATTRIBUTE_KINDS) + ")"


class Geometry(UserDefinedType[str]):
    """PostGIS ``geometry(Geometry, 4326)``; binds and selects GeoJSON text."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "geometry(Geometry,4326)"

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return func.ST_SetSRID(func.ST_GeomFromGeoJSON(bindvalue), 4326, type_=self)

    def column_expression(self, column: Any) -> ColumnElement[Any]:
        return func.ST_AsGeoJSON(column, type_=self)


def _timestamp() -> TIMESTAMP:
    return TIMESTAMP(timezone=True)


#: Per-tenant tables: no schema here, bound with ``schema_translate_map={None: schema}``.
metadata = MetaData()

entities = Table(
    "entities",
    metadata,
    Column("id", Text, primary_key=True),
    Column("types", ARRAY(Text), nullable=False),
    Column("scopes", ARRAY(Text), nullable=True),
    Column("created_at", _timestamp(), nullable=False),
    Column("modified_at", _timestamp(), nullable=False),
    Column("deleted_at", _timestamp(), nullable=True),
    Column("entity", JSONB, nullable=False),
    Index("entities_types", "types", postgresql_using="gin"),
    Index("entities_scopes", "scopes", postgresql_using="gin"),
    # Room on each page for HOT updates: the ingest rewrites ``entity``/``modified_at`` (not
    # indexed) of every entity it touches, and a HOT update skips the three indexes.
    postgresql_with={"fillfactor": "70"},
)

attributes = Table(
    "attributes",
    metadata,
    # No foreign key to entities: every writer creates and locks the entity row before its
    # attributes, and the per-row FK check was 40 % of the ingest's current-state upsert.
    Column("entity_id", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("dataset_id", Text, primary_key=True, server_default=text(f"'{DEFAULT_DATASET}'")),
    Column("kind", Text, nullable=False),
    Column("value", JSONB, nullable=True),
    Column("value_number", Float(precision=53), nullable=True),
    Column("value_text", Text, nullable=True),
    Column("geometry", Geometry(), nullable=True),
    Column("observed_at", _timestamp(), nullable=True),
    Column("unit_code", Text, nullable=True),
    Column("body", JSONB, nullable=False),
    Column("created_at", _timestamp(), nullable=False),
    Column("modified_at", _timestamp(), nullable=False),
    CheckConstraint(_KIND_CHECK, name="attributes_kind"),
    # Partial indexes: a numeric reading updates only the indexes it has values for (the
    # ingest rewrites current-state rows constantly), and every filter on these columns
    # implies NOT NULL, so the planner still uses them.
    Index(
        "attributes_name_number",
        "name",
        "value_number",
        postgresql_where=text("value_number IS NOT NULL"),
    ),
    Index(
        "attributes_geometry",
        "geometry",
        postgresql_using="gist",
        postgresql_where=text("geometry IS NOT NULL"),
    ),
)


class PlanePoint(UserDefinedType[Any]):
    """PostgreSQL's built-in ``point`` (two float8, ``position[0]`` and ``position[1]``)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "point"


entity_locations = Table(
    "entity_locations",
    metadata,
    Column("entity_id", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("dataset_id", Text, primary_key=True),
    Column("geometry", Geometry(), nullable=False),
    Column("position", PlanePoint(), nullable=True),
    Index(
        "entity_locations_position",
        "position",
        postgresql_using="gist",
        postgresql_include=["name", "entity_id"],
        postgresql_where=text("position IS NOT NULL"),
    ),
    Index(
        "entity_locations_shapes",
        "geometry",
        postgresql_using="gist",
        postgresql_where=text("position IS NULL"),
    ),
)
entity_locations.add_is_dependent_on(attributes)

#: ``entity_locations`` kept in step with ``attributes`` by row triggers whose ``WHEN``
#: clauses let rows without geometry (numeric readings) through without a call. ``%(schema)s``
#: is the tenant's quoted schema: see :func:`location_sync`.
#: ``entity_locations.position`` of a geometry ``{geometry}``.
_POSITION = (
    "CASE WHEN GeometryType({geometry}) = 'POINT' AND NOT ST_IsEmpty({geometry}) "
    "THEN point(ST_X({geometry}), ST_Y({geometry})) END"
)

LOCATION_SYNC = (
    """CREATE FUNCTION %(schema)s.entity_locations_sync() RETURNS trigger
LANGUAGE plpgsql AS $sync$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM %(schema)s.entity_locations
        WHERE entity_id = OLD.entity_id AND name = OLD.name AND dataset_id = OLD.dataset_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.geometry IS NOT NULL THEN
        INSERT INTO %(schema)s.entity_locations (entity_id, name, dataset_id, geometry, position)
        VALUES (
            NEW.entity_id, NEW.name, NEW.dataset_id, NEW.geometry, %(position)s)
        ON CONFLICT (entity_id, name, dataset_id)
        DO UPDATE SET geometry = EXCLUDED.geometry, position = EXCLUDED.position;
    END IF;
    RETURN NULL;
END
$sync$""",
    """CREATE TRIGGER entity_locations_insert AFTER INSERT ON %(schema)s.attributes
FOR EACH ROW WHEN (NEW.geometry IS NOT NULL)
EXECUTE FUNCTION %(schema)s.entity_locations_sync()""",
    """CREATE TRIGGER entity_locations_update AFTER UPDATE ON %(schema)s.attributes
FOR EACH ROW WHEN (
    OLD.geometry IS DISTINCT FROM NEW.geometry
    OR (OLD.geometry IS NOT NULL
        AND (OLD.entity_id, OLD.name, OLD.dataset_id) <> (NEW.entity_id, NEW.name, NEW.dataset_id))
)
EXECUTE FUNCTION %(schema)s.entity_locations_sync()""",
    """CREATE TRIGGER entity_locations_delete AFTER DELETE ON %(schema)s.attributes
FOR EACH ROW WHEN (OLD.geometry IS NOT NULL)
EXECUTE FUNCTION %(schema)s.entity_locations_sync()""",
)


def location_sync(quoted_schema: str) -> list[str]:
    """The statements creating the triggers that keep ``entity_locations`` in a schema.

    Run after both tables exist (a new tenant schema, revision ``k0003``).
    """
    position = _POSITION.format(geometry="NEW.geometry")
    return [
        statement % {"schema": quoted_schema, "position": position} for statement in LOCATION_SYNC
    ]


def location_backfill(quoted_schema: str) -> str:
    """The statement filling an empty ``entity_locations`` from ``attributes``."""
    position = _POSITION.format(geometry="geometry")
    return f"""INSERT INTO {quoted_schema}.entity_locations
(entity_id, name, dataset_id, geometry, position)
SELECT entity_id, name, dataset_id, geometry, {position}
FROM {quoted_schema}.attributes WHERE geometry IS NOT NULL"""  # noqa: S608 — the schema is quoted by the caller, the rest is constant


#: Characters of ``value_text`` that ``attributes_name_text`` indexes (ADR 0019): the whole
#: value would make a long random string (over about 2,650 bytes after compression) fail
#: its write. 256 characters are at most 1,024 bytes of UTF-8, with a name at its 768-byte
#: limit about 1,800 bytes uncompressed: under btree's 2,704 whatever the text; and longer
#: than nearly every string a filter compares, so the prefix alone is as selective.
TEXT_INDEX_PREFIX = 256


def text_index_prefix(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``left(value, 256)``, written as the index has it (a constant, never a parameter)."""
    return func.left(value, literal_column(str(TEXT_INDEX_PREFIX)), type_=Text)


Index(
    "attributes_name_text",
    attributes.c.name,
    text_index_prefix(attributes.c.value_text),
    postgresql_where=text("value_text IS NOT NULL"),
)

attribute_instances = Table(
    "attribute_instances",
    metadata,
    Column("entity_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("dataset_id", Text, nullable=False, server_default=text(f"'{DEFAULT_DATASET}'")),
    Column("observed_at", _timestamp(), nullable=False),
    Column("has_observed_at", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", _timestamp(), nullable=False, server_default=func.now()),
    Column("modified_at", _timestamp(), nullable=True),
    Column(
        "instance_id",
        UUID(as_uuid=False),
        nullable=False,
        server_default=func.gen_random_uuid(),
    ),
    Column("kind", Text, nullable=False, server_default=text("'Property'")),
    Column("unit_code", Text, nullable=True),
    Column("value_number", Float(precision=53), nullable=True),
    Column("value", JSONB, nullable=True),
    Column("geometry", Geometry(), nullable=True),
    Column("extras", JSONB, nullable=True),
    UniqueConstraint(
        "entity_id", "name", "dataset_id", "observed_at", name="attribute_instances_key"
    ),
    CheckConstraint(_KIND_CHECK, name="attribute_instances_kind"),
)

#: Context queries keep only entities that have not been deleted.
LIVE_ENTITY: ColumnElement[bool] = entities.c.deleted_at.is_(None)

#: Tables shared by every tenant, in :data:`SHARED_SCHEMA` (created by the migrations).
shared_metadata = MetaData(schema=SHARED_SCHEMA)

tenants = Table(
    "tenants",
    shared_metadata,
    Column("tenant", Text, primary_key=True),
    Column("schema_name", Text, nullable=False, unique=True),
    Column("layout_version", Integer, nullable=False),
    Column("created_at", _timestamp(), nullable=False, server_default=func.now()),
)

store_settings = Table(
    "store_settings",
    shared_metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("decided_at", _timestamp(), nullable=False, server_default=func.now()),
)

outbox = Table(
    "outbox",
    shared_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("created_at", _timestamp(), nullable=False, server_default=func.now()),
)
