"""ClickHouse users that ``init-db`` creates: a read-only one for BI tools
(``--bi-user NAME``) and a least-privilege one for workers (``--worker-user NAME``).

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

The worker user (:func:`worker_user_statements`) is made the same way, without
``readonly`` and with exactly the rights a worker started with
``TOKENLORD_WORKER_INIT_DB=false`` uses: ``INSERT`` on the tables a batch
writes (:data:`WORKER_INSERT`), ``SELECT`` on the tables restore and the pages
read (:data:`WORKER_SELECT`) and on the public views. No DDL, no ``TRUNCATE``,
no ``ALTER``/``OPTIMIZE`` (the store issues none at run time), nothing on
``_titles`` (``init-db`` fills it). tests/unit/test_worker_user.py records
every statement a Store issues and checks it against these lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from . import schema

__all__ = [
    "BI_SETTINGS",
    "PASSWORD_PARAM",
    "WORKER_INSERT",
    "WORKER_SELECT",
    "bi_user_statements",
    "create_bi_user",
    "create_worker_user",
    "worker_user_statements",
]

PASSWORD_PARAM: Final = "bi_password"
#: Tables a worker inserts into (Store.write_batch, Store.record_digest).
WORKER_INSERT: Final = (
    "_events", "_hourly", "_weekly", "_waste", "_rejected", "_outcomes", "_progress", "_digests",
)  # fmt: skip
#: Tables a worker reads directly (restore, the pages' week list and audit trail, digests sent); views besides.
WORKER_SELECT: Final = ("_events", "_hourly", "_weekly", "_waste", "_outcomes", "_progress", "_digests")
#: The user's settings: read-only queries; a BI client may still set its query timeout.
BI_SETTINGS: Final = "readonly = 1, max_execution_time CHANGEABLE_IN_READONLY"


class CommandClient(Protocol):
    def command(self, cmd: str, parameters: dict[str, Any] | None = None) -> Any: ...


def _user_statements(database: str, user: str, grants: Sequence[tuple[str, str]], settings: str) -> list[str]:
    db, name = schema.quote_ident(database), schema.quote_ident(user)
    if not grants:
        raise ValueError("nothing to grant")
    definition = f"IDENTIFIED WITH sha256_password BY {{{PASSWORD_PARAM}:String}} DEFAULT DATABASE {db}"
    if settings:
        definition += f" SETTINGS {settings}"
    granted = ", ".join(f"{priv} ON {db}.{schema.quote_ident(obj)}" for priv, obj in grants)
    return [
        f"CREATE USER IF NOT EXISTS {name} {definition}",
        f"ALTER USER {name} {definition}",
        f"GRANT {granted} TO {name} WITH REPLACE OPTION",
    ]


def bi_user_statements(database: str, user: str, views: Sequence[str] = schema.PUBLIC_VIEWS) -> list[str]:
    """The statements, in order; the password is the parameter ``{bi_password:String}``."""
    if not views:
        raise ValueError("no views to grant")
    return _user_statements(database, user, [("SELECT", v) for v in views], BI_SETTINGS)


def worker_user_statements(database: str, user: str) -> list[str]:
    """The worker user's statements (no settings; the password as for the BI user)."""
    grants = [
        (", ".join(p for p, on in (("INSERT", WORKER_INSERT), ("SELECT", WORKER_SELECT)) if table in on), table)
        for table in dict.fromkeys(WORKER_INSERT + WORKER_SELECT)
    ]
    return _user_statements(database, user, [*grants, *(("SELECT", v) for v in schema.PUBLIC_VIEWS)], "")


def create_bi_user(client: CommandClient, database: str, user: str, password: str) -> list[str]:
    """Run :func:`bi_user_statements` on ``client``; returns the statements run.

    Raises ``ValueError`` for an empty password; ClickHouse's own errors
    propagate (the caller words them, without the password).
    """
    if not password:
        raise ValueError("the BI user's password is empty")
    return _run(client, bi_user_statements(database, user), password)


def create_worker_user(client: CommandClient, database: str, user: str, password: str) -> list[str]:
    """Run :func:`worker_user_statements` on ``client``, like :func:`create_bi_user`."""
    if not password:
        raise ValueError("the worker user's password is empty")
    return _run(client, worker_user_statements(database, user), password)


def _run(client: CommandClient, stmts: list[str], password: str) -> list[str]:
    for stmt in stmts:
        params = {PASSWORD_PARAM: password} if f"{{{PASSWORD_PARAM}:" in stmt else None
        client.command(stmt, parameters=params)
    return stmts
