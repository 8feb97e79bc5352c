"""Subscriptions in ``cityos_interop.subscriptions``: CRUD, status, schedules (SQLAlchemy Core).

Tenants are kept as their NGSI-LD name, the default tenant as ``""`` (as for hosted
@contexts). Every method is one short transaction; the notifier's status updates are
applied in batches (:meth:`SubscriptionStore.record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cityos_interoperability.ngsild.jsonld.context import ContextValue
from cityos_interoperability.store.tables import DEFAULT_TENANT
from cityos_interoperability.subscriptions.access import scope_of
from cityos_interoperability.subscriptions.model import Subscription
from cityos_interoperability.subscriptions.tables import revisions, subscriptions

table = subscriptions


def tenant_key(tenant: str | None) -> str:
    return DEFAULT_TENANT if tenant is None else tenant


def tenant_of(key: str) -> str | None:
    return None if key == DEFAULT_TENANT else key


@dataclass(frozen=True)
class StoredSubscription:
    """A subscription with what the broker keeps about it."""

    subscription: Subscription
    created_at: datetime
    modified_at: datetime
    times_sent: int = 0
    times_failed: int = 0
    last_notification: datetime | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_status: str | None = None


@dataclass
class Outcome:
    """Notification status changes of one subscription, summed over some deliveries."""

    sent: int = 0
    failed: int = 0
    last_notification: datetime | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    #: "ok" or "failed" as of the latest attempt.
    status: str | None = None
    failure_reason: str | None = None
    status_at: datetime | None = None

    def attempt(self, at: datetime, ok: bool, reason: str | None = None) -> None:
        if ok:
            self.last_success = _latest(self.last_success, at)
        else:
            self.last_failure = _latest(self.last_failure, at)
            self.failure_reason = reason
        if self.status_at is None or at >= self.status_at:
            self.status, self.status_at = ("ok" if ok else "failed"), at

    def absorb(self, later: Outcome) -> None:
        """Add the outcomes recorded after this one."""
        self.sent += later.sent
        self.failed += later.failed
        for member in ("last_notification", "last_success", "last_failure"):
            mine, theirs = getattr(self, member), getattr(later, member)
            if theirs is not None:
                setattr(self, member, _latest(mine, theirs))
        if later.status is not None:
            self.status, self.status_at = later.status, later.status_at
            self.failure_reason = later.failure_reason or self.failure_reason


def _latest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


class SubscriptionStore:
    """The subscriptions table of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- CRUD ------------------------------------------------------------------------------

    def create(
        self,
        tenant: str | None,
        document: dict[str, Any],
        context: ContextValue | None,
        now: datetime,
        *,
        data_scope: dict[str, Any] | None,
    ) -> bool:
        """Insert a subscription; False when the tenant already has one with this id.

        ``data_scope`` is what its subject may read (:func:`.access.scope_document`).
        """
        subscription = Subscription.from_document(tenant, document, context)
        with self._engine.begin() as connection:
            row = connection.execute(
                pg_insert(table)
                .values(
                    tenant=tenant_key(tenant),
                    id=subscription.id,
                    context=context,
                    created_at=now,
                    modified_at=now,
                    data_scope=data_scope,
                    **_matching_columns(subscription, now),
                )
                .on_conflict_do_nothing()
                .returning(table.c.id)
            ).first()
        return row is not None

    def get(self, tenant: str | None, subscription_id: str) -> StoredSubscription | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(table).where(
                    table.c.tenant == tenant_key(tenant), table.c.id == subscription_id
                )
            ).first()
        return None if row is None else _stored(row)

    def page(
        self, tenant: str | None, *, limit: int, offset: int
    ) -> tuple[list[StoredSubscription], int]:
        """One page of a tenant's subscriptions (by creation) and how many there are."""
        key = tenant_key(tenant)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(table)
                .where(table.c.tenant == key)
                .order_by(table.c.created_at, table.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = connection.execute(
                select(func.count()).select_from(table).where(table.c.tenant == key)
            ).scalar_one()
        return [_stored(row) for row in rows], int(total)

    def replace(
        self,
        tenant: str | None,
        document: dict[str, Any],
        context: ContextValue | None,
        now: datetime,
        *,
        data_scope: dict[str, Any] | None,
    ) -> bool:
        """Store an updated subscription document and its updater's read scope.

        False when it no longer exists.
        """
        subscription = Subscription.from_document(tenant, document, context)
        with self._engine.begin() as connection:
            result = connection.execute(
                update(table)
                .where(table.c.tenant == tenant_key(tenant), table.c.id == subscription.id)
                .values(
                    modified_at=now, data_scope=data_scope, **_matching_columns(subscription, now)
                )
            )
        return bool(result.rowcount)

    def delete(self, tenant: str | None, subscription_id: str) -> bool:
        with self._engine.begin() as connection:
            result = connection.execute(
                delete(table).where(
                    table.c.tenant == tenant_key(tenant), table.c.id == subscription_id
                )
            )
        return bool(result.rowcount)

    # -- what the notifier reads -----------------------------------------------------------

    def version(self) -> tuple[int, int]:
        """(highest revision, number of rows): changes whenever any subscription does."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(func.coalesce(func.max(table.c.revision), 0), func.count())
            ).one()
        return int(row[0]), int(row[1])

    def load_all(self) -> list[Subscription]:
        """Every subscription that can still notify (not expired), of every tenant."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(
                    table.c.tenant,
                    table.c.document,
                    table.c.context,
                    table.c.modified_at,
                    table.c.data_scope,
                ).where(or_(table.c.expires_at.is_(None), table.c.expires_at > func.now()))
            ).all()
        return [
            Subscription.from_document(
                tenant_of(row.tenant),
                row.document,
                row.context,
                row.modified_at,
                scope=scope_of(row.data_scope),
            )
            for row in rows
        ]

    def claim_due(self, now: datetime, limit: int = 100) -> list[tuple[str | None, str]]:
        """Periodic subscriptions whose time has come, moved to their next run.

        ``FOR UPDATE SKIP LOCKED`` lets several notifier processes share the schedule
        without sending one period twice.
        """
        due = (
            select(table.c.tenant, table.c.id)
            .where(
                table.c.time_interval.is_not(None),
                table.c.is_active.is_(True),
                table.c.next_run_at <= now,
                or_(table.c.expires_at.is_(None), table.c.expires_at > now),
            )
            .order_by(table.c.next_run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        statement = (
            update(table)
            .where(table.c.tenant == due.c.tenant, table.c.id == due.c.id)
            .values(next_run_at=now + func.make_interval(0, 0, 0, 0, 0, 0, table.c.time_interval))
            .returning(table.c.tenant, table.c.id)
        )
        with self._engine.begin() as connection:
            rows = connection.execute(statement).all()
        return [(tenant_of(row.tenant), row.id) for row in rows]

    def claim_throttled(
        self, tenant: str | None, subscription_id: str, throttling: float, now: datetime
    ) -> bool:
        """True (and the notification time set) when ``throttling`` seconds have passed."""
        with self._engine.begin() as connection:
            row = connection.execute(
                update(table)
                .where(
                    table.c.tenant == tenant_key(tenant),
                    table.c.id == subscription_id,
                    or_(
                        table.c.last_notification.is_(None),
                        table.c.last_notification <= now - timedelta(seconds=throttling),
                    ),
                )
                .values(last_notification=now)
                .returning(table.c.id)
            ).first()
        return row is not None

    def record(self, outcomes: dict[tuple[str | None, str], Outcome]) -> None:
        """Add delivery outcomes to the status columns, in one statement."""
        if not outcomes:
            return
        parameters = [
            {
                "key_tenant": tenant_key(tenant),
                "key_id": subscription_id,
                "sent": outcome.sent,
                "failed": outcome.failed,
                "notified": outcome.last_notification,
                "success": outcome.last_success,
                "failure": outcome.last_failure,
                "status": outcome.status,
                "reason": outcome.failure_reason,
            }
            for (tenant, subscription_id), outcome in outcomes.items()
        ]
        statement = (
            update(table)
            .where(
                and_(table.c.tenant == bindparam("key_tenant"), table.c.id == bindparam("key_id"))
            )
            .values(
                times_sent=table.c.times_sent + bindparam("sent"),
                times_failed=table.c.times_failed + bindparam("failed"),
                last_notification=func.greatest(table.c.last_notification, bindparam("notified")),
                last_success=func.greatest(table.c.last_success, bindparam("success")),
                last_failure=func.greatest(table.c.last_failure, bindparam("failure")),
                last_status=func.coalesce(bindparam("status"), table.c.last_status),
                last_failure_reason=func.coalesce(bindparam("reason"), table.c.last_failure_reason),
            )
        )
        with self._engine.begin() as connection:
            connection.execute(statement, parameters)


def _matching_columns(subscription: Subscription, now: datetime) -> dict[str, Any]:
    """The columns derived from the document, and a new revision."""
    return {
        "document": subscription.document,
        "is_active": subscription.is_active,
        "expires_at": subscription.expires_at,
        "time_interval": subscription.time_interval,
        # A periodic subscription notifies once at once, then every timeInterval.
        "next_run_at": now if subscription.periodic else None,
        "revision": revisions.next_value(),
    }


def _stored(row: Any) -> StoredSubscription:
    return StoredSubscription(
        subscription=Subscription.from_document(
            tenant_of(row.tenant), row.document, row.context, scope=scope_of(row.data_scope)
        ),
        created_at=row.created_at,
        modified_at=row.modified_at,
        times_sent=int(row.times_sent),
        times_failed=int(row.times_failed),
        last_notification=row.last_notification,
        last_success=row.last_success,
        last_failure=row.last_failure,
        last_status=row.last_status,
    )
