"""Supabase's Data API roles on the Supabase-like PostgreSQL 15, after migrate and a load.

As PostgREST does: log in as `authenticator`, then per request `SET ROLE anon` (no JWT) or
`SET ROLE authenticated` with the JWT's claims in `request.jwt.claims`. Nothing of the pipeline is
reachable for anon, nor for a signed-in user without a subscription; a subscribed user sees
exactly its subscription (professional: the whole building; free: the documented sample).
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql

from bangkok_pipeline.db import migrations
from bangkok_pipeline.db.connection import with_database
from bangkok_pipeline.ops import health
from bangkok_pipeline.warehouse import access
from bangkok_pipeline_tests.conftest import load_directly, new_database
from bangkok_pipeline_tests.hosted.server import SupabaseLikeServer

pytestmark = pytest.mark.integration

# Schemas whose relations any role may read by design: the catalogs, and the extensions Supabase
# installs for the project (pg_stat_statements' view is granted to PUBLIC by the extension).
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", "extensions")
# Supabase grants its Storage tables to the API roles itself, under RLS: the provider's writes,
# not the pipeline's (reads are still probed there, and return nothing).
_NOT_THE_PIPELINES = (*_SYSTEM_SCHEMAS, "storage")
_RELATIONS = """
SELECT n.nspname::text, c.relname::text
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT n.nspname = ANY (%s)
  AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1
"""
_WRITES = """
SELECT c.oid::regclass::text, p.privilege
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege)
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT n.nspname = ANY (%s)
  AND CASE WHEN p.privilege IN ('INSERT', 'UPDATE')
           THEN has_any_column_privilege(%s, c.oid, p.privilege)
           ELSE has_table_privilege(%s, c.oid, p.privilege) END
ORDER BY 1, 2
"""


@dataclass
class Project:
    owner_url: str
    authenticator_url: str
    building: int
    users: dict[str, uuid.UUID]


@pytest.fixture(scope="module")
def project(
    supabase_server: SupabaseLikeServer, tiny_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    with new_database(supabase_server.url(), migrate=True) as url:
        load_directly(url, tiny_source, "2019-02", tmp_path_factory.mktemp("home"))
        users = {}
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT building_id FROM buildings").fetchone()
            assert row
            building = int(row[0])
            for name, tier in (("pro", "professional"), ("free", "free"), ("none", None)):
                tenant = access.create_tenant(conn, name)
                if tier:
                    access.subscribe(conn, tenant, building, tier)
                users[name] = access.add_user(conn, tenant, "viewer", f"{name}@example.org")
        users["stranger"] = uuid.uuid4()  # signed up on the project, not a user of the pipeline
        authenticator = with_database(supabase_server.url(user="authenticator"), _dbname(url))
        yield Project(url, authenticator, building, users)


def _dbname(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def _as_api(project: Project, role: str, user: str | None = None) -> psycopg.Connection:
    """A connection of the Data API: authenticator, switched to `role` with the user's JWT."""
    conn = psycopg.connect(project.authenticator_url, autocommit=True)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    if user:
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, false)",
            (access.claims(project.users[user]),),
        )
    return conn


def _count(schema: str, name: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))


def _readable_rows(conn: psycopg.Connection) -> dict[str, int]:
    """Every relation outside the system schemas that returns a row to this role."""
    seen = {}
    for schema, name in conn.execute(_RELATIONS, (list(_SYSTEM_SCHEMAS),)).fetchall():
        try:
            row = conn.execute(_count(schema, name)).fetchone()
        except errors.InsufficientPrivilege:
            continue
        if row and row[0]:
            seen[f"{schema}.{name}"] = int(row[0])
    return seen


@pytest.mark.parametrize(("role", "user"), [("anon", None), ("authenticated", "stranger")])
def test_anon_and_a_signed_up_stranger_read_and_write_nothing(
    project: Project, role: str, user: str | None
) -> None:
    with _as_api(project, role, user) as conn:
        assert _readable_rows(conn) == {}
        assert conn.execute(_WRITES, (list(_NOT_THE_PIPELINES), role, role)).fetchall() == []
        if role == "anon":
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM api.latest_readings(%s)", (project.building,))
        else:
            rows = conn.execute("SELECT * FROM api.latest_readings(%s)", (project.building,))
            assert rows.fetchall() == []


def test_a_user_whose_tenant_has_no_subscription_sees_only_its_own_tenant_and_user(
    project: Project,
) -> None:
    with _as_api(project, "authenticated", "none") as conn:
        assert _readable_rows(conn) == {"public.tenants": 1, "public.app_users": 1}
        assert (
            conn.execute(
                _WRITES, (list(_NOT_THE_PIPELINES), "authenticated", "authenticated")
            ).fetchall()
            == []
        )


def test_service_role_holds_nothing_of_the_pipeline(project: Project) -> None:
    with psycopg.connect(project.owner_url) as conn:
        assert access.privilege_leaks(conn) == []
        assert "service_role" in access.audited_roles(conn)
    with _as_api(project, "service_role") as conn:
        readable = _readable_rows(conn)
    assert readable == {}, "service_role bypasses RLS: it must hold no privilege at all"


@pytest.mark.parametrize(("user", "tier"), [("pro", "professional"), ("free", "free")])
def test_a_subscribed_user_through_authenticator_sees_exactly_its_subscription(
    project: Project, user: str, tier: str
) -> None:
    with psycopg.connect(project.owner_url) as conn:
        expected = conn.execute(
            "SELECT count(*), count(DISTINCT r.sensor_id) FROM sensor_readings AS r "
            "JOIN sensors AS s USING (sensor_id) "
            "WHERE s.building_id = %s AND (s.free_sample OR NOT %s)",
            (project.building, tier == "free"),
        ).fetchone()
        sample = conn.execute("SELECT count(*) FROM sensors WHERE free_sample").fetchone()
        partition = conn.execute(
            "SELECT relname::text FROM pg_class "
            "WHERE relnamespace = 'partitions'::regnamespace AND relkind = 'r' LIMIT 1"
        ).fetchone()
    assert partition
    assert expected and expected[0] > 0 and sample
    with _as_api(project, "authenticated", user) as conn:
        seen = conn.execute(
            "SELECT count(*), count(DISTINCT sensor_id) FROM sensor_readings"
        ).fetchone()
        assert seen == expected
        latest = conn.execute(
            "SELECT count(*) FROM api.latest_readings(%s)", (project.building,)
        ).fetchone()
        assert latest and latest[0] == expected[1]
        if tier == "free":
            assert expected[1] == sample[0] == 24
        # The load's side tables, the partitions and the private code stay out of reach.
        for schema, name in (
            ("public", "quarantine"),
            ("public", "load_log"),
            ("partitions", partition[0]),
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(_count(schema, name))


@pytest.mark.parametrize(
    ("grant", "leak"),
    [
        ("GRANT SELECT ON quarantine TO anon", "anon has SELECT on public.quarantine"),
        ("GRANT SELECT ON sensors TO service_role", "service_role has SELECT on public.sensors"),
        ("GRANT DELETE ON annotations TO authenticated", "authenticated has DELETE on public"),
    ],
)
def test_the_audit_names_a_privilege_a_data_api_role_gains(
    project: Project, grant: str, leak: str
) -> None:
    """What Supabase's default privileges or a hand-made grant would give them: flagged by the
    audit behind the asset check and `health`'s access concern, as critical."""
    with psycopg.connect(project.owner_url, autocommit=True) as conn:
        conn.execute(grant)
        try:
            found = [str(x) for x in access.privilege_leaks(conn)]
            assert any(line.startswith(leak) for line in found), found
            report = health.check_health(project.owner_url, None, health.Limits(10 * 1024**3, 500))
            finding = next(f for f in report.findings if f.concern == "access")
            assert finding.status is health.Status.CRITICAL
            assert leak in finding.message
        finally:
            conn.execute(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM "))
        assert access.privilege_leaks(conn) == []


def test_migrations_apply_and_roll_back_under_supabases_event_triggers(
    supabase_server: SupabaseLikeServer,
) -> None:
    """PostgREST's schema-cache watches fire on every DDL statement and drop of the project login's
    migrations, up to the last step, down to base and up again, and change nothing of them."""
    with new_database(supabase_server.url()) as url, psycopg.connect(url, autocommit=True) as ear:
        triggers = "SELECT evtname, evtenabled FROM pg_event_trigger ORDER BY 1"
        assert ear.execute(triggers).fetchall() == [
            ("pgrst_ddl_watch", "O"),
            ("pgrst_drop_watch", "O"),
        ]
        ear.execute("LISTEN pgrst")
        with psycopg.connect(url, autocommit=True) as conn:
            applied = migrations.migrate(conn)
            assert migrations.downgrade(conn, 0)[-1] == applied[0]
            assert migrations.migrate(conn) == applied
            assert access.privilege_leaks(conn) == []
        heard = [note.payload for note in ear.notifies(timeout=2, stop_after=50)]
        assert heard and set(heard) == {"reload schema"}
