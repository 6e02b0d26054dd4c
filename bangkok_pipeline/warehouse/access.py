"""Multi-tenant access from Python: roles, acting as an app user, provisioning, privilege audit.

The model is SQL (`sql/migrations/0004_multi_tenant.up.sql`, explained in sql/README.md); this
module holds what Python needs of it: the role names, a transaction acting as an app user (the
per-transaction claim that `auth.uid()` reads, as PostgREST sets it), service-side provisioning of
tenants, users and subscriptions (run by the owner or a superuser, which pass RLS through the
`service` policies), login roles for API clients, and the audit behind the
`api_roles_cannot_bypass_rls` asset check.
"""

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bangkok_pipeline.db.queries import query

OWNER_ROLE = "bangkok_owner"
LOADER_ROLE = "bangkok_loader"
API_ROLE = "bangkok_api"
# Supabase's Data API roles (anon: no JWT; authenticated: a user's JWT; service_role: BYPASSRLS).
SUPABASE_API_ROLES = ("anon", "authenticated", "service_role")

# Every table an API role can read: RLS must be enabled and forced on each.
RLS_TABLES = (
    "buildings",
    "floors",
    "zones",
    "sensors",
    "sensor_readings_rows",
    "sensor_readings_days",
    "hourly_sensor_stats",
    "daily_sensor_stats",
    "sensor_latest_readings",
    "tenants",
    "app_users",
    "building_owners",
    "subscriptions",
    "saved_queries",
    "annotations",
)
# The load's own tables: no API role may hold any privilege on them.
SIDE_TABLES = (
    "load_log",
    "quarantine",
    "reconciliation",
    "sensor_coverage",
    "reading_gaps",
    "run_failures",
    "schema_migrations",
    "schema_repeatables",
    "archived_months",
    "health_alerts",
    "month_locks",
)


def claims(user_id: uuid.UUID | str) -> str:
    """The JSON PostgREST puts in `request.jwt.claims`; `auth.uid()` reads its `sub`."""
    return json.dumps({"sub": str(user_id), "role": "authenticated"})


@contextmanager
def acting_as(conn: psycopg.Connection, user_id: uuid.UUID | str) -> Iterator[psycopg.Connection]:
    """A transaction in which `auth.uid()` is `user_id`; the claim ends with the transaction."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims(user_id),))
        yield conn


def create_tenant(conn: psycopg.Connection, name: str) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO tenants (name) VALUES (%s) RETURNING tenant_id", (name,)
    ).fetchone()
    assert row is not None
    return row[0]


def add_user(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID,
    role: str,
    email: str,
    login_role: str | None = None,
    user_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A user of the tenant; with `login_role` the identity counts only in that login's sessions."""
    user_id = user_id or uuid.uuid4()
    conn.execute(
        query("insert_app_user"),
        {
            "user_id": user_id,
            "tenant_id": tenant_id,
            "role": role,
            "email": email,
            "login_role": login_role,
        },
    )
    return user_id


def subscribe(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID,
    building_id: int,
    tier: str,
    status: str = "active",
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> int:
    row = conn.execute(
        query("insert_subscription"),
        {
            "tenant_id": tenant_id,
            "building_id": building_id,
            "tier": tier,
            "status": status,
            "starts_at": starts_at,
            "expires_at": expires_at,
        },
    ).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Login:
    """A database login role and its password (ignored where the server trusts the socket)."""

    name: str
    password: str

    def url(self, server_url: str) -> str:
        """`server_url` with this login's credentials."""
        return make_conninfo(server_url, user=self.name, password=self.password)


def create_login(
    conn: psycopg.Connection, name: str, member_of: str, act_as_member: bool = False
) -> Login:
    """A LOGIN role granted `member_of`, with a random password (roles are cluster-wide: drop
    it with `drop_login` when done). Never superuser, never BYPASSRLS.

    `act_as_member` makes its sessions start as `member_of` (ALTER ROLE ... SET role): what a
    loader login needs, so the month partitions it creates belong to bangkok_loader and any other
    loader login can replace them later.
    """
    password = secrets.token_urlsafe(24)
    conn.execute(
        sql.SQL(query("create_login_role")).format(
            name=sql.Identifier(name),
            password=sql.Literal(password),
            member_of=sql.Identifier(member_of),
        )
    )
    if act_as_member:
        conn.execute(
            sql.SQL("ALTER ROLE {} SET role = {}").format(
                sql.Identifier(name), sql.Literal(member_of)
            )
        )
    return Login(name, password)


def drop_login(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@dataclass(frozen=True)
class PrivilegeLeak:
    grantee: str
    relation: str
    privilege: str

    def __str__(self) -> str:
        return f"{self.grantee} has {self.privilege} on {self.relation}"


def privilege_leaks(conn: psycopg.Connection) -> list[PrivilegeLeak]:
    """Privileges that let an API role read or write around the policies: bangkok_api's members,
    PUBLIC and, where they exist, Supabase's anon, authenticated and service_role (the rules are
    in `sql/queries/select_api_privilege_leaks.sql`)."""
    rows = conn.execute(
        query("select_api_privilege_leaks"),
        {
            "api_role": API_ROLE,
            "side_tables": list(SIDE_TABLES),
            "owner_roles": [OWNER_ROLE, LOADER_ROLE],
        },
    ).fetchall()
    return [PrivilegeLeak(*row) for row in rows]


def audited_roles(conn: psycopg.Connection) -> list[str]:
    """The API roles the audit covers on this server: bangkok_api, Supabase's that exist, PUBLIC."""
    rows = conn.execute(
        "SELECT rolname::text FROM pg_roles WHERE rolname = ANY (%s) ORDER BY 1",
        ([API_ROLE, *SUPABASE_API_ROLES],),
    ).fetchall()
    return [name for (name,) in rows] + ["PUBLIC"]


def rls_gaps(conn: psycopg.Connection) -> list[str]:
    """API-readable tables whose Row Level Security is not both enabled and forced."""
    rows = conn.execute(query("select_rls_gaps"), {"tables": list(RLS_TABLES)}).fetchall()
    return [name for (name,) in rows]
