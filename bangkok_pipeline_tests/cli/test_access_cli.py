"""`bangkok-pipeline access ...` on a real server: a tenant, a user with its own login and a
subscription made through the CLI, then the login (through the URL the CLI printed, with the
user's claim) sees building 1's sensor and latest reading, through RLS and `api.latest_readings`,
only while the subscription is in force: suspend hides them, resume shows them, cancel is final.
Wrong arguments are one `error:` line on stderr, exit 1, and change nothing. No readings are
loaded: the module's database holds one sensor and its latest reading, inserted directly. Runs on
the embedded server and on the Supabase-like 15, as its project login (not a superuser).
"""

import shlex
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.warehouse import access
from bangkok_pipeline_tests.conftest import new_database

pytestmark = [pytest.mark.integration, pytest.mark.hosted]

# The same in every xdist worker (parametrized ids must match); the servers are the session's own.
TAG = "cli"
LOGIN = f"t_access_{TAG}"  # roles are cluster-wide: dropped afterwards
NEVER = f"t_access_never_{TAG}"  # a login a refused add-user must not leave behind
SEEDED = f"Seeded {TAG}"


@pytest.fixture(scope="module")
def admin_url(server_url: str) -> Iterator[str]:
    """A migrated database with one sensor in building 1 and its latest reading, and a tenant
    (SEEDED) with a user taken@example.org and a subscription; the logins dropped afterwards."""
    try:
        with (
            new_database(server_url, migrate=True) as url,
            psycopg.connect(url, autocommit=True) as conn,
        ):
            conn.execute("INSERT INTO floors VALUES (1, 1)")
            conn.execute("INSERT INTO zones VALUES (1, 1, 1)")
            conn.execute(
                "INSERT INTO sensors (building_id, floor, zone, channel, kind, unit, "
                "source_column) VALUES (1, 1, 1, 'Light', 'light', 'kW', 'z1_Light(kW)')"
            )
            conn.execute(
                "INSERT INTO sensor_latest_readings SELECT '2019-02-01', sensor_id, "
                "'2019-02-01 00:00+07', 1.5 FROM sensors"
            )
            tenant = access.create_tenant(conn, SEEDED)
            access.add_user(conn, tenant, "admin", "taken@example.org")
            access.subscribe(conn, tenant, 1, "free")
            yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            for name in (LOGIN, NEVER):
                access.drop_login(conn, name)


@pytest.fixture
def cli(admin_url: str, bangkok_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", admin_url)
    return admin_url


def _access(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["access", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _seen(login_url: str, user_id: uuid.UUID) -> tuple[int, int]:
    """What the login, claiming the user, sees: sensors (RLS) and latest readings (the api)."""
    with psycopg.connect(login_url) as conn, access.acting_as(conn, user_id):
        sensors = conn.execute("SELECT count(*) FROM sensors").fetchone()
        latest = conn.execute("SELECT count(*) FROM api.latest_readings(1)").fetchone()
    assert sensors and latest
    return sensors[0], latest[0]


def _snapshot(url: str) -> tuple[int, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM app_users), "
            "(SELECT count(*) FROM subscriptions), (SELECT count(*) FROM subscriptions "
            "WHERE status = 'active'), (SELECT count(*) FROM pg_roles WHERE rolname = %s)",
            (NEVER,),
        ).fetchone()
    assert row
    return tuple(row)


def test_tenant_user_login_and_subscription_round_trip(
    cli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _access(capsys, "add-tenant", "Acme Energy")
    assert code == 0, err
    tenant_id = uuid.UUID(out.strip())

    code, out, err = _access(
        capsys,
        "add-user",
        "--tenant",
        "Acme Energy",
        "--role",
        "analyst",
        "--email",
        "ana@acme.example",
        "--login",
        LOGIN,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith(": analyst ana@acme.example of tenant Acme Energy")
    user_id = uuid.UUID(lines[0].split()[1].rstrip(":"))
    login_url = lines[2].strip()
    assert lines[3].strip() == f"psql {shlex.quote(login_url)}"
    assert str(user_id) in lines[5]
    params, server = conninfo_to_dict(login_url), conninfo_to_dict(cli)
    assert params["user"] == LOGIN and params["password"]
    assert (params["dbname"], params.get("host"), params.get("port")) == (
        server["dbname"],
        server.get("host"),
        server.get("port"),
    )
    with psycopg.connect(cli) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, pg_has_role(rolname, %s, 'MEMBER') "
            "FROM pg_roles WHERE rolname = %s",
            (access.API_ROLE, LOGIN),
        ).fetchone()
    assert role == (False, False, True)
    assert _seen(login_url, user_id) == (0, 0)  # no subscription yet

    yesterday = (datetime.now(BANGKOK_TZ) - timedelta(days=1)).date()
    code, out, err = _access(
        capsys,
        "subscribe",
        "--tenant",
        str(tenant_id),
        "--building",
        "Chamchuri 5",
        "--tier",
        "professional",
        "--from",
        str(yesterday),
    )
    assert code == 0, err
    assert out.startswith("subscription ") and out.rstrip().endswith("; in force")
    subscription = out.split()[1]
    assert _seen(login_url, user_id) == (1, 1)

    code, out, err = _access(capsys, "list", "--tenant", "Acme Energy")
    assert code == 0, err
    assert out.splitlines()[0] == f"Acme Energy  (tenant {tenant_id})"
    rows = [line.split() for line in out.splitlines()]
    assert ["analyst", "ana@acme.example", LOGIN, str(user_id)] in rows
    assert [subscription, "professional", "1", "Chamchuri", "5", "active"] + [
        str(yesterday),
        "00:00",
        "open",
        "yes",
    ] in rows
    assert SEEDED not in out
    code, out, _ = _access(capsys, "list")
    assert code == 0 and SEEDED in out and "taken@example.org" in out

    for command, status, seen in (
        ("suspend", "suspended", (0, 0)),
        ("suspend", "suspended", (0, 0)),
        ("resume", "active", (1, 1)),
        ("cancel", "cancelled", (0, 0)),
    ):
        code, out, err = _access(capsys, command, subscription)
        assert code == 0, err
        assert f", {status} from " in out
        assert _seen(login_url, user_id) == seen, command
    code, out, err = _access(capsys, "resume", subscription)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: subscription {subscription} is cancelled: it cannot become active "
        "(subscribe again instead)"
    ]
    code, out, _ = _access(capsys, "list", "--tenant", str(tenant_id))
    assert "cancelled" in out and out.rstrip().endswith("no")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("add-user", "--tenant", "Nobody Inc", "--role", "viewer", "--email", "x@example.org"),
            "no tenant has the id or name 'Nobody Inc' (see `access list`)",
        ),
        (
            ("add-user", "--tenant", SEEDED, "--role", "boss", "--email", "x@example.org"),
            "role must be one of admin, analyst, viewer, not 'boss'",
        ),
        (
            ("add-user", "--tenant", SEEDED, "--role", "viewer", "--email", "TAKEN@example.org"),
            f"TAKEN@example.org is already user * of tenant '{SEEDED}'",
        ),
        (  # the login is created first: the refused user takes it back
            ("add-user", "--tenant", SEEDED, "--role", "viewer", "--email", "taken@example.org")
            + ("--login", NEVER),
            f"taken@example.org is already user * of tenant '{SEEDED}'",
        ),
        (
            ("add-user", "--tenant", SEEDED, "--role", "viewer", "--email", "new@example.org")
            + ("--login", access.API_ROLE),
            f'cannot create login {access.API_ROLE}: role "{access.API_ROLE}" already exists',
        ),
        (("add-tenant", SEEDED), f"a tenant named '{SEEDED}' already exists"),
        (
            ("subscribe", "--tenant", SEEDED, "--building", "1", "--tier", "gold"),
            "tier must be one of free, professional, not 'gold'",
        ),
        (
            ("subscribe", "--tenant", SEEDED, "--building", "Tower 9", "--tier", "free"),
            "no building has the id or name 'Tower 9'",
        ),
        (
            ("subscribe", "--tenant", SEEDED, "--building", "1", "--tier", "free")
            + ("--from", "2026-03-01", "--until", "2026-02-01"),
            "the subscription would end on 2026-02-01, before it starts (on 2026-03-01)",
        ),
        (
            ("subscribe", "--tenant", SEEDED, "--building", "1", "--tier", "free")
            + ("--until", "2020-01-31"),
            "the subscription would end on 2020-01-31, before it starts (now)",
        ),
        (
            ("subscribe", "--tenant", SEEDED, "--building", "1", "--tier", "free")
            + ("--from", "1 March"),
            "--from '1 March' is not a date: expected YYYY-MM-DD",
        ),
        (("suspend", "987654"), "no subscription 987654 (see `access list`)"),
        (("cancel", "last"), "'last' is not a subscription id (a number: see `access list`)"),
        (
            ("list", "--tenant", str(uuid.UUID(int=0))),
            f"no tenant has the id or name '{uuid.UUID(int=0)}' (see `access list`)",
        ),
    ],
)
def test_wrong_arguments_are_one_line_exit_1_and_change_nothing(
    cli: str, args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(cli)
    code, out, err = _access(capsys, *args)
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1
    prefix, _, suffix = f"error: {message}".partition("*")
    assert err.startswith(prefix) and err.rstrip("\n").endswith(suffix), err
    assert _snapshot(cli) == before


def test_a_login_without_the_owner_role_may_not_administer(
    admin_url: str,
    bangkok_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"t_access_api_{TAG}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        login = access.create_login(conn, name, access.API_ROLE)
    try:
        monkeypatch.setenv("DATABASE_URL", login.url(admin_url))
        code, out, err = _access(capsys, "list")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            access.drop_login(conn, name)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: user {name} may not administer access: connect as a superuser or a member of "
        f"{access.OWNER_ROLE}"
    ]


def test_the_window_covers_whole_bangkok_days_both_included() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    starts, expires = access.subscription_window(date(2026, 1, 1), date(2026, 1, 31), now)
    assert starts == datetime(2026, 1, 1, tzinfo=BANGKOK_TZ)
    assert expires == datetime(2026, 2, 1, tzinfo=BANGKOK_TZ)
    assert access.subscription_window(None, None, now) == (None, None)
    assert access.subscription_window(date(2026, 1, 1), date(2026, 1, 1), now)[1] == datetime(
        2026, 1, 2, tzinfo=BANGKOK_TZ
    )
    assert access.subscription_window(None, date(2026, 5, 1), now)[1] == datetime(
        2026, 5, 2, tzinfo=BANGKOK_TZ
    )  # until today: in force until tonight's midnight
    with pytest.raises(access.AccessError, match="before it starts"):
        access.subscription_window(None, date(2026, 4, 30), now)
