"""The docs are checked: a CLI command, an HTTP route or a module the docs do not name fails a test.

What counts as documented is read from the code, never from a list kept here: the commands from the
typer app's click tree, the routes from the gateway's and the admin API's routing tables, the
modules from the files under ``src/tollway``. "The docs" are ``README.md`` and ``docs/*.md``.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer

import tollway

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(tollway.__file__).resolve().parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# `GET /path`, with `{…}` placeholders (spaces allowed inside: `{id or name}`); the query string,
# punctuation and the closing backtick end the path.
_ROUTE_MENTION = re.compile(
    r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/(?:\{[^}\n]*\}|[^\s`|,;)(?{}\]])*)"
)
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


@functools.cache
def docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


# -- (a) CLI commands -------------------------------------------------------------------------------


def _typer_apps(module: ModuleType) -> list[typer.Typer]:
    return [value for value in vars(module).values() if isinstance(value, typer.Typer)]


def cli_app() -> typer.Typer:
    """The ``tollway`` command's typer app, found by import so that it may move inside ``tollway.cli``.

    ``tollway.cli.app`` when it exists; otherwise, among the typer apps of ``tollway.cli`` and (for a
    package) its submodules, the one with the most commands, which is the root that the others are
    added to as groups.
    """
    cli = importlib.import_module("tollway.cli")
    app = getattr(cli, "app", None)
    if isinstance(app, typer.Typer):
        return app
    apps = _typer_apps(cli)
    for info in pkgutil.walk_packages(getattr(cli, "__path__", []), prefix="tollway.cli."):
        apps += _typer_apps(importlib.import_module(info.name))
    assert apps, "no typer.Typer found in tollway.cli"
    return max(apps, key=lambda a: len(list(_walk(typer.main.get_command(a), ()))))


def _walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Every visible command and group under ``command`` as its words after ``tollway``.

    Duck-typed on click's ``Group.commands`` (typer may ship its own copy of click, so no isinstance).
    """
    if path and not getattr(command, "hidden", False):
        yield path
    for name, sub in (getattr(command, "commands", None) or {}).items():
        if not getattr(sub, "hidden", False):
            yield from _walk(sub, (*path, name))


def cli_commands() -> list[str]:
    return [" ".join(words) for words in _walk(typer.main.get_command(cli_app()), ())]


def test_the_cli_has_commands_and_groups() -> None:
    """Guards the test below: an app found empty would make it pass vacuously."""
    commands = cli_commands()
    assert "start" in commands
    assert any(" " in command for command in commands), "no group subcommand found (keys create…)"


@pytest.mark.parametrize("command", cli_commands())
def test_every_cli_command_is_documented(command: str) -> None:
    pattern = r"\btollway +" + " +".join(map(re.escape, command.split())) + r"(?![\w-])"
    documented = re.search(pattern, docs_text()) is not None
    assert documented, (
        f"`tollway {command}` is not named in README.md or docs/*.md: add it where its feature is documented"
    )


# -- (b) HTTP routes --------------------------------------------------------------------------------


def http_routes() -> list[tuple[str, str]]:
    """(method, path) of every route served, ``*`` for a path segment the route takes as an argument."""
    from tollway import server
    from tollway.ingress import admin_api, models

    routes = [(method, path) for path, methods in server.ROUTES.items() for method in methods]
    # /v1/models/{id}: matched by prefix, outside the table
    routes += [(method, prefix + "*") for prefix in models.PREFIXES for method in server._ONE_MODEL]
    routes += [
        (method, admin_api.PREFIX + "/".join(pattern)) for method, pattern, _handler in admin_api._ROUTES
    ]
    return sorted(set(routes), key=lambda route: (route[1], route[0]))


def documented_routes(text: str) -> set[tuple[str, str]]:
    """Every ``METHOD /path`` the text names, placeholders (``{id}``) as ``*``, query strings dropped."""
    return {(method, _PLACEHOLDER.sub("*", path)) for method, path in _ROUTE_MENTION.findall(text)}


def test_documented_routes_are_read_as_written() -> None:
    text = "`GET /admin/keys/{id or name}`, `GET /admin/spend?by=key`, and `POST /v1/messages`."
    assert documented_routes(text) == {
        ("GET", "/admin/keys/*"),
        ("GET", "/admin/spend"),
        ("POST", "/v1/messages"),
    }


@pytest.mark.parametrize(("method", "path"), http_routes())
def test_every_http_route_is_documented(method: str, path: str) -> None:
    shown = path.replace("*", "{id}")
    documented = (method, path) in documented_routes(docs_text())
    assert documented, (
        f"`{method} {shown}` is not named in README.md or docs/*.md (written as `METHOD /path`, "
        "a placeholder in braces for an argument)"
    )


# -- (c) modules ------------------------------------------------------------------------------------


def package_modules() -> list[str]:
    """Every module file under ``src/tollway`` as a package-relative path (``cache/lookup.py``).

    The top-level ``__init__.py`` and ``__main__.py`` are the package itself and ``python -m tollway``;
    a subpackage's ``__init__.py`` is kept (see ``unnamed_modules``).
    """
    modules = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py"))
    return [m for m in modules if m not in ("__init__.py", "__main__.py")]


def module_table_rows(markdown: str) -> list[tuple[str, str]]:
    """(first cell, the other cells) of each body row of the tables whose first header cell is "module"."""
    rows: list[tuple[str, str]] = []
    in_table = header = False
    for line in markdown.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not in_table:
            in_table = header = cells[0].strip("`* ").lower() == "module"
            continue
        if header:  # the |---| line
            header = False
            continue
        rows.append((cells[0], " | ".join(cells[1:])))
    return rows


# a module (`cache/lookup.py`, `lookup.py`) or a package (`cache/`) as the docs write it
_MODULE_MENTION = re.compile(r"(?<![\w/.])(\w+(?:/\w+)*(?:\.py|/))(?![\w/])")


def named_in_table(markdown: str) -> set[str]:
    """The package-relative paths of modules (``cache/lookup.py``) and packages (``cache/``) the module
    table names.

    A row names what its first cell names; a row whose first cell is a package (``cache/``) also
    names the modules its other cells mention by file name (``lookup.py`` → ``cache/lookup.py``); and
    any cell names a path with a slash in it (``ingress/calls.py``). A bare file name outside its
    package's row is ambiguous and names nothing.
    """
    named: set[str] = set()
    for first, rest in module_table_rows(markdown):
        heads = _MODULE_MENTION.findall(first)
        named.update(heads)
        mentions = _MODULE_MENTION.findall(rest)
        named.update(m for m in mentions if "/" in m.rstrip("/"))
        named.update(m for m in mentions if m.endswith("/"))
        for head in heads:
            if head.endswith("/"):
                named.update(head + m for m in mentions)
    return named


def unnamed_modules(modules: list[str], markdown: str) -> list[str]:
    """The modules the module table does not name.

    A subpackage's ``__init__.py`` counts as named when its package (``cache/``) or any module in it
    is: what an ``__init__.py`` holds belongs in its package's row.
    """
    named = named_in_table(markdown)
    missing = []
    for module in modules:
        if module.endswith("/__init__.py"):
            package = module.removesuffix("__init__.py")
            if not any(name.startswith(package) for name in named):
                missing.append(module)
        elif module not in named:
            missing.append(module)
    return missing


def test_unnamed_modules_reads_the_module_table() -> None:
    markdown = (
        "| module | holds |\n|---|---|\n"
        "| `server.py` | the app |\n"
        "| `cache/` | `lookup.py` (stage 3), `key.py` |\n"
        "| `ingress/openai.py` | OpenAI's endpoints |\n"
        "\n| other | table |\n|---|---|\n| `pool.py` | not the module table |\n"
    )
    modules = ["server.py", "cache/__init__.py", "cache/lookup.py", "cache/key.py", "ingress/openai.py"]
    assert unnamed_modules(modules, markdown) == []
    assert unnamed_modules(["pool.py", "ingress/__init__.py", "store/__init__.py"], markdown) == [
        "pool.py",
        "store/__init__.py",
    ]
    assert unnamed_modules(["cache/memory.py", "lookup.py", "key.py"], markdown) == [
        "cache/memory.py",
        "lookup.py",
        "key.py",
    ]


def test_every_module_is_in_the_architecture_table() -> None:
    missing = unnamed_modules(package_modules(), ARCHITECTURE.read_text(encoding="utf-8"))
    assert not missing, f"docs/architecture.md's module table does not name: {', '.join(missing)}"


def test_the_architecture_table_names_no_module_that_is_gone() -> None:
    """The other way round: a row left behind by a rename or a removal fails too. (A cell may name a
    module relative to its row's package, ``sql/session.py`` in the ``store/`` row: any path under
    ``src/tollway`` that ends with the name counts.)"""
    paths = [path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*")]
    named = named_in_table(ARCHITECTURE.read_text(encoding="utf-8"))
    gone = sorted(
        name
        for name in named
        if not any(path == name.rstrip("/") or path.endswith("/" + name.rstrip("/")) for path in paths)
    )
    assert not gone, f"docs/architecture.md's module table names what src/tollway does not hold: {gone}"
