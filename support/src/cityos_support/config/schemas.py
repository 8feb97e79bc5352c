"""Request and response models of ``/admin/api``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ConfigEntryOut(BaseModel):
    key: str
    version: int = Field(description="0: never written, the built-in default is in force")
    value: Any
    changed_by: str | None = None
    changed_at: datetime | None = None
    comment: str | None = None
    description: str | None = None


class ConfigWrite(BaseModel):
    value: Any
    expected_version: int | None = Field(
        default=None, description="the version edited; 409 if the key moved since"
    )
    comment: str | None = None


class RoleSummary(BaseModel):
    role: str
    permissions: list[str]
    read_types: list[str]
    write_types: list[str]
    elements: dict[str, list[str]]


class WhoAmI(BaseModel):
    subject: str
    client: str | None
    roles: list[str]
    tenants: list[str] | None


class UserRolesOut(BaseModel):
    username: str
    enabled: bool
    roles: list[str]
    tenants: list[str]
    source: str = Field(description="local, or federated (from the city's LDAP/AD)")


class UsersOut(BaseModel):
    users: list[UserRolesOut]
    truncated: bool = Field(description="the realm has more users than listed")
