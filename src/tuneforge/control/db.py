"""Engine, sessions and schema upgrades for the job store (SQLite by default, PostgreSQL to scale out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.control.tables import ProjectLockRow
from tuneforge.errors import NotFound
from tuneforge.wire import names

T = TypeVar("T")


def normalize_url(url: str) -> str:
    """postgresql:// uses psycopg 3 (the driver we install); sqlite paths get their folder created."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(
            dbapi_conn: Any, _record: Any
        ) -> None:  # WAL lets readers and one writer work at once across processes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (an empty or older database is fine)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


class Store:
    """Sessions on one engine."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = normalize_url(url)
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        session: Session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def get_scoped(
    store: Store, table: type[T], resource_id: str, project: str, location: str, kind: str, collection: str
) -> T:
    """A row of ``table`` that belongs to ``projects/{project}/locations/{location}``, or NOT_FOUND naming it."""
    with store.session() as s:
        row = s.get(table, resource_id)
    if row is None or getattr(row, "project", None) != project or getattr(row, "location", None) != location:
        raise NotFound(f"{kind} {names.name(collection, project, location, resource_id)} not found.")
    return row


def fetch(s: Session, table: type[T], key: str, *, lock: bool = False) -> T:
    """The row ``key`` of ``table`` in this session (locked for update with ``lock``); NOT_FOUND if it is gone (a
    concurrent delete, or a job's row removed under a running worker)."""
    row = s.get(table, key, with_for_update=lock)
    if row is None:
        raise NotFound(f"{table.__name__.removesuffix('Row')} {key} not found.")
    return row


def lock_project(s: Session, project: str) -> None:
    """Take ``project``'s admission lock for the rest of this transaction (a write to its lock row: PostgreSQL locks
    the row, SQLite the database), so a quota count that follows sees every admission that came before it."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    upsert = insert(ProjectLockRow).values(project=project, admissions=1)
    bump = {"admissions": ProjectLockRow.admissions + 1}
    s.execute(upsert.on_conflict_do_update(index_elements=[ProjectLockRow.project], set_=bump))
