"""Multi-tenant access from Python: roles, acting as an app user, provisioning, privilege audit.

The model is SQL (`sql/migrations/0004_multi_tenant.up.sql`, explained in sql/README.md); this
module holds what Python needs of it: the role names, a transaction acting as an app user (the
per-transaction claim that `auth.uid()` reads, as PostgREST sets it), service-side provisioning of
tenants, users and subscriptions (run by the owner or a superuser, which pass RLS through the
`service` policies), login roles for API clients, and the audit behind the
`api_roles_cannot_bypass_rls` asset check. What `bangkok-pipeline access ...` does is here too:
finding tenants and buildings by id or name, suspending, resuming and cancelling subscriptions,
and listing tenants with their users and subscriptions; refusals raise AccessError.
"""

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import quote, urlencode

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import class_row

from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.db.queries import query

OWNER_ROLE = "bangkok_owner"
LOADER_ROLE = "bangkok_loader"
API_ROLE = "bangkok_api"
# Supabase's Data API roles (anon: no JWT; authenticated: a user's JWT; service_role: BYPASSRLS).
SUPABASE_API_ROLES = ("anon", "authenticated", "service_role")
# The values app_users.role and subscriptions.tier take (migration 0004's CHECK constraints).
APP_ROLES = ("admin", "analyst", "viewer")
TIERS = ("free", "professional")
# A subscription's status -> the statuses it may be set from. `cancelled` is final: the tenant
# subscribes again (an admin's own cancel through the API is final too).
STATUS_CHANGES = {
    "suspended": ("active",),
    "active": ("suspended",),
    "cancelled": ("active", "suspended"),
}
# What a login's connection URL keeps of the server's: never its credentials or client files.
_SHARED_CONNECTION_PARAMS = (
    "hostaddr",
    "sslmode",
    "sslrootcert",
    "sslnegotiation",
    "gssencmode",
    "channel_binding",
    "target_session_attrs",
)

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


class AccessError(ValueError):
    """A refused administration request (unknown tenant, duplicate email, ...), in one line."""


def claims(user_id: uuid.UUID | str) -> str:
    """The JSON PostgREST puts in `request.jwt.claims`; `auth.uid()` reads its `sub`."""
    return json.dumps({"sub": str(user_id), "role": "authenticated"})


@contextmanager
def acting_as(conn: psycopg.Connection, user_id: uuid.UUID | str) -> Iterator[psycopg.Connection]:
    """A transaction in which `auth.uid()` is `user_id`; the claim ends with the transaction."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims(user_id),))
        yield conn


@dataclass(frozen=True)
class Tenant:
    tenant_id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class AppUser:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    email: str
    login_role: str | None
    created_at: datetime


@dataclass(frozen=True)
class Building:
    building_id: int
    name: str


@dataclass(frozen=True)
class Subscription:
    """A subscription as stored, with its building's name; `in_force` as RLS decides it now."""

    subscription_id: int
    tenant_id: uuid.UUID
    building_id: int
    building: str
    tier: str
    status: str
    starts_at: datetime
    expires_at: datetime | None
    in_force: bool


@dataclass(frozen=True)
class TenantAccess:
    """A tenant, its users and its subscriptions."""

    tenant: Tenant
    users: list[AppUser]
    subscriptions: list[Subscription]


def check_administrator(conn: psycopg.Connection) -> None:
    """Refuse a session that cannot see every tenant: only a superuser or a login with
    bangkok_owner's privileges passes RLS on the tenancy tables (the `service` policies)."""
    row = conn.execute(query("select_access_administrator"), {"owner_role": OWNER_ROLE}).fetchone()
    if not (row and row[0]):
        raise not_an_administrator(conn.info.user)


def not_an_administrator(user: str) -> AccessError:
    return AccessError(
        f"user {user} may not administer access: connect as a superuser or a member of {OWNER_ROLE}"
    )


def create_tenant(conn: psycopg.Connection, name: str) -> uuid.UUID:
    try:
        row = conn.execute(
            "INSERT INTO tenants (name) VALUES (%s) RETURNING tenant_id", (name,)
        ).fetchone()
    except errors.UniqueViolation:
        raise AccessError(f"a tenant named {name!r} already exists") from None
    except errors.CheckViolation:
        raise AccessError(
            f"{name!r} is not a tenant name: it must be non-empty, without leading or trailing "
            "spaces"
        ) from None
    assert row is not None
    return row[0]


def find_tenant(conn: psycopg.Connection, ref: str) -> Tenant:
    """The tenant whose id or (unique) name is `ref`."""
    try:
        tenant_id: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        tenant_id = None
    with conn.cursor(row_factory=class_row(Tenant)) as cursor:
        found = cursor.execute(
            query("select_tenant"), {"tenant_id": tenant_id, "name": ref}
        ).fetchone()
    if found is None:
        raise AccessError(f"no tenant has the id or name {ref!r} (see `access list`)")
    return found


def find_building(conn: psycopg.Connection, ref: str) -> Building:
    """The building whose id or (unique) name is `ref`."""
    building_id = int(ref) if ref.strip().isdigit() else None
    with conn.cursor(row_factory=class_row(Building)) as cursor:
        found = cursor.execute(
            query("select_building"), {"building_id": building_id, "name": ref}
        ).fetchone()
    if found is None:
        raise AccessError(f"no building has the id or name {ref!r}")
    return found


def add_user(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID,
    role: str,
    email: str,
    login_role: str | None = None,
    user_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A user of the tenant; with `login_role` the identity counts only in that login's sessions.
    An email may belong to one user only (across tenants, compared case-insensitively)."""
    if role not in APP_ROLES:
        raise AccessError(f"role must be one of {', '.join(APP_ROLES)}, not {role!r}")
    taken = conn.execute(query("select_app_user_by_email"), {"email": email}).fetchone()
    if taken is not None:
        raise AccessError(f"{email} is already user {taken[0]} of tenant {taken[1]!r}")
    user_id = user_id or uuid.uuid4()
    try:
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
    except errors.CheckViolation:
        raise AccessError(f"{email!r} is not an email address") from None
    except errors.UniqueViolation:
        raise AccessError(f"user {user_id} already exists") from None
    return user_id


def subscription_window(
    first_day: date | None, last_day: date | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """`starts_at` and `expires_at` for whole Bangkok days, both included: from the first
    day's midnight (None: now) to the midnight after the last day (None: no end)."""
    starts_at = _bangkok_midnight(first_day) if first_day else None
    expires_at = _bangkok_midnight(last_day + timedelta(days=1)) if last_day else None
    if last_day and expires_at and expires_at <= (starts_at or now):
        start = f"on {first_day}" if first_day else "now"
        raise AccessError(f"the subscription would end on {last_day}, before it starts ({start})")
    return starts_at, expires_at


def _bangkok_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), BANGKOK_TZ)


def subscribe(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID,
    building_id: int,
    tier: str,
    status: str = "active",
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> int:
    if tier not in TIERS:
        raise AccessError(f"tier must be one of {', '.join(TIERS)}, not {tier!r}")
    try:
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
    except errors.CheckViolation:
        raise AccessError("a subscription must end after it starts") from None
    except errors.ForeignKeyViolation:
        raise AccessError(f"no tenant {tenant_id} or no building {building_id}") from None
    assert row is not None
    return int(row[0])


def subscriptions(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID | None = None,
    subscription_id: int | None = None,
) -> list[Subscription]:
    """Every subscription, a tenant's, or the one `subscription_id` (an empty list if none)."""
    with conn.cursor(row_factory=class_row(Subscription)) as cursor:
        return cursor.execute(
            query("select_subscriptions"),
            {"tenant_id": tenant_id, "subscription_id": subscription_id},
        ).fetchall()


def set_subscription_status(
    conn: psycopg.Connection, subscription_id: int, status: str
) -> tuple[Subscription, bool]:
    """Suspend, resume (`active`) or cancel a subscription, as STATUS_CHANGES allows. Returns it
    afterwards and whether it changed: setting the status it already has changes nothing."""
    with conn.transaction():
        changed = conn.execute(
            query("update_subscription_status"),
            {
                "subscription_id": subscription_id,
                "status": status,
                "from_statuses": list(STATUS_CHANGES[status]),
            },
        ).fetchone()
        found = subscriptions(conn, subscription_id=subscription_id)
    if not found:
        raise AccessError(f"no subscription {subscription_id} (see `access list`)")
    if changed is None and found[0].status != status:
        raise AccessError(
            f"subscription {subscription_id} is {found[0].status}: it cannot become {status}"
            + (" (subscribe again instead)" if found[0].status == "cancelled" else "")
        )
    return found[0], changed is not None


def list_access(conn: psycopg.Connection, tenant_id: uuid.UUID | None = None) -> list[TenantAccess]:
    """Every tenant (or one) by name, with its users and subscriptions."""
    params = {"tenant_id": tenant_id}
    with conn.cursor(row_factory=class_row(Tenant)) as cursor:
        tenants = cursor.execute(query("select_tenants"), params).fetchall()
    with conn.cursor(row_factory=class_row(AppUser)) as cursor:
        users = cursor.execute(query("select_app_users"), params).fetchall()
    held = subscriptions(conn, tenant_id)
    return [
        TenantAccess(
            tenant,
            [u for u in users if u.tenant_id == tenant.tenant_id],
            [s for s in held if s.tenant_id == tenant.tenant_id],
        )
        for tenant in tenants
    ]


@dataclass(frozen=True)
class Login:
    """A database login role and its password (ignored where the server trusts the socket)."""

    name: str
    password: str

    def url(self, server_url: str) -> str:
        """`server_url` with this login's credentials."""
        return make_conninfo(server_url, user=self.name, password=self.password)

    def uri(self, server_url: str) -> str:
        """A `postgresql://` URL for this login to the server and database of `server_url`
        (its TLS settings kept, its credentials and client files not)."""
        params = conninfo_to_dict(server_url)
        shared = {k: str(params[k]) for k in _SHARED_CONNECTION_PARAMS if params.get(k)}
        host, port = str(params.get("host") or ""), str(params.get("port") or "")
        if host.startswith("/") or "," in host:  # a Unix socket directory, or several hosts
            shared = {"host": host, **({"port": port} if port else {}), **shared}
            host = port = ""
        address = f"[{host}]" if ":" in host else host
        netloc = f"{quote(self.name, safe='')}:{quote(self.password, safe='')}@{address}"
        netloc += f":{port}" if port else ""
        dbname = quote(str(params.get("dbname") or ""), safe="")
        return f"postgresql://{netloc}/{dbname}" + (
            f"?{urlencode(shared, safe='/')}" if shared else ""
        )


def create_login(
    conn: psycopg.Connection, name: str, member_of: str, act_as_member: bool = False
) -> Login:
    """A LOGIN role granted `member_of`, with a random password (roles are cluster-wide: drop
    it with `drop_login` when done). Never superuser, never BYPASSRLS.

    `act_as_member` makes its sessions start as `member_of` (ALTER ROLE ... SET role): what a
    loader login needs, so the month partitions it creates belong to bangkok_loader and any other
    loader login can replace them later.
    """
    if not name or len(name.encode()) > 63:
        raise AccessError(f"{name!r} is not a login name: 1 to 63 bytes")
    password = secrets.token_urlsafe(24)
    try:
        conn.execute(
            sql.SQL(query("create_login_role")).format(
                name=sql.Identifier(name),
                password=sql.Literal(password),
                member_of=sql.Identifier(member_of),
            )
        )
    except (errors.DuplicateObject, errors.ReservedName, errors.InsufficientPrivilege) as error:
        raise AccessError(f"cannot create login {name}: {error.diag.message_primary}") from None
    if act_as_member:
        conn.execute(
            sql.SQL("ALTER ROLE {} SET role = {}").format(
                sql.Identifier(name), sql.Literal(member_of)
            )
        )
    return Login(name, password)


def drop_login(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def add_user_with_login(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID,
    role: str,
    email: str,
    login_name: str,
    user_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, Login]:
    """A user pinned to a new login role, a member of bangkok_api: both or neither."""
    with conn.transaction():
        login = create_login(conn, login_name, API_ROLE)
        return add_user(conn, tenant_id, role, email, login.name, user_id), login


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
