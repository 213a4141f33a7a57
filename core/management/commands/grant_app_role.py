"""`manage.py grant_app_role ROLE [--create]`: give the application's database role exactly the
rights it needs, run as the tables' owner right after `migrate`.

The application connects as ROLE, which does not own the tables: it reads and writes rows, but
cannot TRUNCATE, ALTER or DROP a table, or disable a trigger. On the audit log it may only
SELECT, INSERT and set the three sealing columns (the append-only trigger allows that once per
event) — no DELETE, no UPDATE of an event's content, no TRUNCATE. Migrations run as the owner
(`DATABASE_URL` of the owner for `migrate`, the app role's for everything else). PostgreSQL only.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg2 import sql

AUDIT_TABLE = "core_auditevent"
SEALING_COLUMNS = ("seq", "prev_hash", "hash")


def grant_statements(role: str) -> list[sql.Composed]:
    """Every statement, in order; the owner running them owns the schema's tables."""
    r = sql.Identifier(role)
    audit = sql.Identifier(AUDIT_TABLE)
    sealing = sql.SQL(", ").join(sql.Identifier(c) for c in SEALING_COLUMNS)
    return [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(r),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            r
        ),
        # The audit log: read and append; the sealer sets seq/prev_hash/hash once.
        sql.SQL("REVOKE ALL ON {} FROM {}").format(audit, r),
        sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(audit, r),
        sql.SQL("GRANT UPDATE ({}) ON {} TO {}").format(sealing, audit, r),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(r),
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {}").format(r),
        # Tables a later migration creates get the same row rights.
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE "
            "ON TABLES TO {}"
        ).format(r),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}"
        ).format(r),
    ]


class Command(BaseCommand):
    help = (
        "Grant the application's database role row access only (no TRUNCATE/ALTER/trigger "
        "control; append-only audit log). Run as the tables' owner after migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role")
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the role (LOGIN, password from SAFEGUARD_APP_DB_PASSWORD) if missing",
        )

    def handle(self, *args: Any, role: str, create: bool, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("grant_app_role needs PostgreSQL (SQLite has no roles).")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            row = cursor.fetchone()
            if row is None:
                if not create:
                    raise CommandError(f"no database role {role!r} (use --create)")
                password = os.environ.get("SAFEGUARD_APP_DB_PASSWORD", "")
                if not password:
                    raise CommandError("set SAFEGUARD_APP_DB_PASSWORD to create the role")
                cursor.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)),
                    [password],
                )
            elif row[0]:
                raise CommandError(f"{role!r} is a superuser: it would bypass every restriction")
            cursor.execute(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = %s",
                [AUDIT_TABLE],
            )
            owner = cursor.fetchone()
            if owner is None:
                raise CommandError("run migrate first: the audit table does not exist")
            if owner[0] == role:
                raise CommandError(
                    f"{role!r} owns the tables: migrate as another role, then grant to this one"
                )
            for statement in grant_statements(role):
                cursor.execute(statement)
        self.stdout.write(
            f"{role}: row access granted; no TRUNCATE, ALTER or trigger control; the audit log "
            "is append-only."
        )
