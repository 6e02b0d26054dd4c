"""The `access` commands of `bangkok-pipeline`: tenants, app users (with or without a login role)
and subscriptions, administered without SQL.

main.py registers these parsers and prints the errors listed in EXPECTED_ERRORS as one line. The
work is in warehouse/access.py; the handlers only parse, call and print. They connect to the
database in use (DATABASE_URL or the embedded server), which must be migrated, as a superuser or
a member of bangkok_owner (the role whose `service` policies see every tenant).
"""

import argparse
import shlex
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bangkok_pipeline.cli.operations import migrated
from bangkok_pipeline.cli.parsing import add_command
from bangkok_pipeline.core.settings import BANGKOK_TZ
from bangkok_pipeline.db.connection import resolve_url
from bangkok_pipeline.warehouse import access

EXPECTED_ERRORS: tuple[type[Exception], ...] = (access.AccessError,)
DONE = {"suspended": "suspended", "active": "resumed", "cancelled": "cancelled"}


@contextmanager
def administering(url: str) -> Iterator[psycopg.Connection]:
    """The migrated database, as a login that may administer access."""
    try:
        conn = migrated(url)
    except psycopg.errors.InsufficientPrivilege:  # cannot even read schema_migrations
        raise access.not_an_administrator(str(conninfo_to_dict(url).get("user", "?"))) from None
    with conn:
        access.check_administrator(conn)
        yield conn


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise access.AccessError(f"{option} {text!r} is not a date: expected YYYY-MM-DD") from None


def _subscription_id(text: str) -> int:
    if not text.isdigit():
        raise access.AccessError(f"{text!r} is not a subscription id (a number: see `access list`)")
    return int(text)


def _user_id(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        raise access.AccessError(f"--user-id {text!r} is not a UUID") from None


def _time(moment: datetime | None) -> str:
    return moment.astimezone(BANGKOK_TZ).strftime("%Y-%m-%d %H:%M") if moment else "open"


def _summary(sub: access.Subscription) -> str:
    until = f"until {_time(sub.expires_at)}" if sub.expires_at else "no end"
    return (
        f"{sub.tier}, building {sub.building_id} {sub.building}, {sub.status} from "
        f"{_time(sub.starts_at)}, {until} (Bangkok time); "
        + ("in force" if sub.in_force else "not in force now")
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str) -> list[str]:
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _add_tenant(args: argparse.Namespace) -> int:
    with administering(resolve_url()) as conn:
        print(access.create_tenant(conn, args.name))
    return 0


def _add_user(args: argparse.Namespace) -> int:
    url = resolve_url()
    user_id = _user_id(args.user_id)
    login = None
    with administering(url) as conn:
        tenant = access.find_tenant(conn, args.tenant)
        if args.login:
            user_id, login = access.add_user_with_login(
                conn, tenant.tenant_id, args.role, args.email, args.login, user_id
            )
        else:
            user_id = access.add_user(conn, tenant.tenant_id, args.role, args.email, None, user_id)
    print(f"user {user_id}: {args.role} {args.email} of tenant {tenant.name}")
    if login:
        uri = login.uri(url)
        print(f"login {login.name}, member of {access.API_ROLE}; its password is shown only now:")
        print(f"  {uri}")
        print(f"  psql {shlex.quote(uri)}")
        print("each transaction claims the user first (without the claim the login sees nothing):")
        print(f"  SELECT set_config('request.jwt.claims', '{access.claims(user_id)}', true);")
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    first, last = _day(args.first_day, "--from"), _day(args.last_day, "--until")
    starts_at, expires_at = access.subscription_window(first, last, datetime.now(UTC))
    with administering(resolve_url()) as conn:
        tenant = access.find_tenant(conn, args.tenant)
        building = access.find_building(conn, args.building)
        made = access.subscribe(
            conn,
            tenant.tenant_id,
            building.building_id,
            args.tier,
            starts_at=starts_at,
            expires_at=expires_at,
        )
        (sub,) = access.subscriptions(conn, subscription_id=made)
    print(f"subscription {made} of tenant {tenant.name}: {_summary(sub)}")
    return 0


def _set_status(status: str) -> Callable[[argparse.Namespace], int]:
    """The handler of `suspend`, `resume` or `cancel`."""

    def handler(args: argparse.Namespace) -> int:
        subscription_id = _subscription_id(args.subscription)
        with administering(resolve_url()) as conn:
            sub, changed = access.set_subscription_status(conn, subscription_id, status)
        done = DONE[status] if changed else f"already {status}, unchanged"
        print(f"subscription {subscription_id} {done}: {_summary(sub)}")
        return 0

    return handler


def _list(args: argparse.Namespace) -> int:
    with administering(resolve_url()) as conn:
        tenant_id = access.find_tenant(conn, args.tenant).tenant_id if args.tenant else None
        tenants = access.list_access(conn, tenant_id)
    if not tenants:
        print("no tenants (add one: bangkok-pipeline access add-tenant NAME)")
        return 0
    lines: list[str] = []
    for held in tenants:
        lines += ["", f"{held.tenant.name}  (tenant {held.tenant.tenant_id})"]
        users = [(u.role, u.email, u.login_role or "-", str(u.user_id)) for u in held.users]
        lines += (
            ["  users:", *table(("ROLE", "EMAIL", "LOGIN", "USER ID"), users, "    ")]
            if users
            else ["  no users"]
        )
        subs = [
            (
                str(s.subscription_id),
                s.tier,
                f"{s.building_id} {s.building}",
                s.status,
                _time(s.starts_at),
                _time(s.expires_at),
                "yes" if s.in_force else "no",
            )
            for s in held.subscriptions
        ]
        headers = ("ID", "TIER", "BUILDING", "STATUS", "FROM", "UNTIL (EXCLUDED)", "IN FORCE")
        lines += (
            ["  subscriptions (Bangkok time):", *table(headers, subs, "    ")]
            if subs
            else ["  no subscriptions"]
        )
    print("\n".join(lines[1:]))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`access add-tenant | add-user | subscribe | suspend | resume | cancel | list`."""
    admin = add_command(
        commands,
        "access",
        "tenants, their users (with optional login roles) and subscriptions, without SQL",
        "bangkok-pipeline access add-tenant 'Acme Energy'",
        "bangkok-pipeline access list",
    )
    access_commands = admin.add_subparsers(dest="access_command", required=True, metavar="ACCESS")

    tenant = add_command(
        access_commands,
        "add-tenant",
        "add a tenant (an organisation); prints its id",
        "bangkok-pipeline access add-tenant 'Acme Energy'",
    )
    tenant.add_argument("name", help="the tenant's name, unique")
    tenant.set_defaults(handler=_add_tenant)

    user = add_command(
        access_commands,
        "add-user",
        "add a user to a tenant; with --login also a PostgreSQL login for it (a member of "
        f"{access.API_ROLE}), whose connection URL and password are printed once",
        "bangkok-pipeline access add-user --tenant 'Acme Energy' --role analyst "
        "--email ana@acme.example --login acme_ana",
    )
    user.add_argument("--tenant", required=True, help="the tenant's id or name")
    user.add_argument(
        "--role", required=True, metavar="|".join(access.APP_ROLES), help="what the user may do"
    )
    user.add_argument("--email", required=True, help="unique across tenants")
    user.add_argument(
        "--login",
        metavar="NAME",
        help="also create this login role; the user's identity then counts only in its sessions",
    )
    user.add_argument(
        "--user-id",
        metavar="UUID",
        help="the identity auth.uid() returns (on Supabase: auth.users.id; default: a new one)",
    )
    user.set_defaults(handler=_add_user)

    subscribe = add_command(
        access_commands,
        "subscribe",
        "subscribe a tenant to a building: free (the free sample) or professional (every sensor)",
        "bangkok-pipeline access subscribe --tenant 'Acme Energy' --building 1 "
        "--tier professional --from 2026-01-01 --until 2026-12-31",
    )
    subscribe.add_argument("--tenant", required=True, help="the tenant's id or name")
    subscribe.add_argument("--building", required=True, help="the building's id or name")
    subscribe.add_argument("--tier", required=True, metavar="|".join(access.TIERS))
    subscribe.add_argument(
        "--from", dest="first_day", metavar="DATE", help="first day, Bangkok time (default: now)"
    )
    subscribe.add_argument(
        "--until",
        dest="last_day",
        metavar="DATE",
        help="last day included, Bangkok time (default: no end)",
    )
    subscribe.set_defaults(handler=_subscribe)

    for name, status, summary in (
        ("suspend", "suspended", "suspend an active subscription (resume undoes it)"),
        ("resume", "active", "make a suspended subscription active again"),
        ("cancel", "cancelled", "cancel a subscription for good (subscribe again to renew)"),
    ):
        change = add_command(access_commands, name, summary, f"bangkok-pipeline access {name} 7")
        change.add_argument("subscription", metavar="SUBSCRIPTION_ID", help="see `access list`")
        change.set_defaults(handler=_set_status(status))

    listing = add_command(
        access_commands,
        "list",
        "tenants with their users and subscriptions (tier, building, status, window)",
        "bangkok-pipeline access list --tenant 'Acme Energy'",
    )
    listing.add_argument("--tenant", help="only this tenant (id or name)")
    listing.set_defaults(handler=_list)
