"""A read-only ClickHouse user for BI tools (``tokenlord init-db --bi-user NAME``).

The user may ``SELECT`` from the public views (:data:`schema.PUBLIC_VIEWS`)
and nothing else: no internal ``_`` table, no write, no DDL. The views are
``SQL SECURITY DEFINER`` (:func:`schema.ddl`), so they read the internal
tables with the rights of the user who ran ``init-db``; ClickHouse's default
for a plain view is ``INVOKER``, which would need grants on the tables too.

Statements (idempotent; ``init-db`` owns this user and resets it each run):

1. ``CREATE USER IF NOT EXISTS`` with a SHA-256 password, the database as its
   default, and ``readonly = 1`` with ``max_execution_time`` still changeable
   (Grafana's ClickHouse plugin sets it on every query).
2. ``ALTER USER`` with the same: a changed password or a user that existed
   before gets the same definition.
3. One ``GRANT SELECT ON db.view, ... TO user WITH REPLACE OPTION``: exactly
   these privileges, replacing any the user had (roles are not touched).

The user name is checked and quoted by :func:`schema.quote_ident`. The
password is never part of the SQL text: it is bound as the query parameter
``{bi_password:String}``, which ClickHouse's ``CREATE USER`` / ``ALTER USER``
parser accepts where the password string goes (``ParserStringAndSubstitution``).
Embedded chDB has no user management (``CREATE USER`` is refused): the CLI
checks for a server URL first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from . import schema

__all__ = ["BI_SETTINGS", "PASSWORD_PARAM", "bi_user_statements", "create_bi_user"]

PASSWORD_PARAM: Final = "bi_password"
#: The user's settings: read-only queries; a BI client may still set its query timeout.
BI_SETTINGS: Final = "readonly = 1, max_execution_time CHANGEABLE_IN_READONLY"


class CommandClient(Protocol):
    def command(self, cmd: str, parameters: dict[str, Any] | None = None) -> Any: ...


def bi_user_statements(
    database: str, user: str, views: Sequence[str] = schema.PUBLIC_VIEWS
) -> list[str]:
    """The statements, in order; the password is the parameter ``{bi_password:String}``."""
    db, name = schema.quote_ident(database), schema.quote_ident(user)
    if not views:
        raise ValueError("no views to grant")
    definition = (
        f"IDENTIFIED WITH sha256_password BY {{{PASSWORD_PARAM}:String}} "
        f"DEFAULT DATABASE {db} SETTINGS {BI_SETTINGS}"
    )
    grants = ", ".join(f"SELECT ON {db}.{schema.quote_ident(v)}" for v in views)
    return [
        f"CREATE USER IF NOT EXISTS {name} {definition}",
        f"ALTER USER {name} {definition}",
        f"GRANT {grants} TO {name} WITH REPLACE OPTION",
    ]


def create_bi_user(client: CommandClient, database: str, user: str, password: str) -> list[str]:
    """Run :func:`bi_user_statements` on ``client``; returns the statements run.

    Raises ``ValueError`` for an empty password; ClickHouse's own errors
    propagate (the caller words them, without the password).
    """
    if not password:
        raise ValueError("the BI user's password is empty")
    stmts = bi_user_statements(database, user)
    for stmt in stmts:
        params = {PASSWORD_PARAM: password} if f"{{{PASSWORD_PARAM}:" in stmt else None
        client.command(stmt, parameters=params)
    return stmts
