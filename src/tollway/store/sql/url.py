"""Storage URLs: which database a ``storage`` setting names (a SQLite file or a PostgreSQL DSN), and how
to print one without its password."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .session import Dialect


@dataclass(frozen=True, slots=True)
class StorageURL:
    dialect: Dialect
    target: str  # SQLite: the file's path; PostgreSQL: the DSN asyncpg connects to

    def __str__(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.target}"
        return _hide_password(self.target)


def parse_storage_url(url: str) -> StorageURL:
    """``sqlite:///relative/path.db`` (relative to the working directory), ``sqlite:////abs/path.db``,
    ``postgresql://user@host:port/db`` or ``postgres://…`` (the ``+aiosqlite`` / ``+asyncpg`` forms
    of earlier versions are accepted too). Creates the directory of a SQLite file."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"storage url {url!r} has no scheme; expected sqlite:///path.db or postgresql://…")
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return StorageURL("sqlite", str(_sqlite_path(url, rest)))
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        if not rest or rest.startswith("?"):
            raise ValueError(
                f"storage url {url!r} names no database; expected postgresql://user@host:port/db"
            )
        return StorageURL("postgresql", "postgresql://" + rest)
    raise ValueError(
        f"unsupported storage url scheme {scheme!r} in {url!r}; "
        "use sqlite:///path.db (a file) or postgresql://user@host:port/db"
    )


def _sqlite_path(url: str, rest: str) -> Path:
    # rest is "/relative/x.db" or "//abs/x.db": the leading slash separates an (empty) host.
    if not rest.startswith("/") or rest in ("/", "//"):
        raise ValueError(f"storage url {url!r} should look like sqlite:///relative.db or sqlite:////abs.db")
    path_text = rest[1:].split("?", 1)[0]
    if path_text in (":memory:", ""):
        raise ValueError(f"storage url {url!r}: the log store needs a file, not an in-memory database")
    path = Path(path_text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _hide_password(dsn: str) -> str:
    scheme, _, rest = dsn.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return dsn
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
