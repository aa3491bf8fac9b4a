"""``tollway keys …`` and ``tollway tenants …``: manage virtual keys and tenants in the log database
(the one ``--config``/``--storage`` names, as ``tollway logs`` does). Running gateways pick changes
up by themselves: a new key works at once, other changes within ``keys.refresh_interval``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from .common import StorageOpt, fail, log_url

keys_app = typer.Typer(
    no_args_is_help=True, help="Virtual keys: create, list, show, update, disable, enable, rotate, delete."
)
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants: groups of keys with limits of their own.")
err = Console(stderr=True)

T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (for its storage.url).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TenantOpt = Annotated[str | None, typer.Option(help="Tenant the key belongs to.")]
BudgetOpt = Annotated[float | None, typer.Option(help="Budget in US dollars per --budget-period.")]
PeriodOpt = Annotated[
    str | None, typer.Option("--budget-period", help="day, week, month or all (default: month).")
]
ActionOpt = Annotated[
    str | None, typer.Option("--budget-action", help="block (429) or warn (header + log) (default: block).")
]
RpmOpt = Annotated[int | None, typer.Option(help="Requests per minute.")]
TpmOpt = Annotated[int | None, typer.Option(help="Tokens per minute (prompt estimate + max_tokens).")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Requests in flight at once.")]
ModelsOpt = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated models the key may use (patterns like 'gpt-4o*' allowed) (default: any)."
    ),
]
ExpiresOpt = Annotated[
    str | None, typer.Option(help="Expiry: a duration (30d, 12h, 2w) or an ISO date/time.")
]
CacheOpt = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache", help="Whether the response cache serves (and shares) the key's calls."
    ),
]


def _run(config: Path | None, storage: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the key repository of the configured log database, run ``work`` on it, close it."""
    from ..errors import NameTaken, RecordNotFound, SpecError
    from ..keys.repository import KeyRepository
    from ..store import LogStore

    url = log_url(config, storage)

    async def main() -> T:
        store = await LogStore.open(url)
        try:
            return await work(KeyRepository(store.db))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (RecordNotFound, NameTaken, SpecError) as exc:
        raise fail(str(exc).strip("'\"")) from None


def _limits_data(
    budget: float | None,
    budget_period: str | None,
    budget_action: str | None,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
) -> dict[str, Any]:
    given = {
        "budget": budget,
        "budget_period": budget_period,
        "budget_action": budget_action,
        "rpm": rpm,
        "tpm": tpm,
        "concurrency": concurrency,
    }
    return {k: v for k, v in given.items() if v is not None}


def _print(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(show_header=False, box=None)
    for name, value in record.items():
        if name == "budget" and value:
            value = f"${value['amount']:g}/{value['period']} ({value['action']})"
        elif name in ("expires_at", "created_at", "updated_at") and value:
            value = _when(value)
        if name != "key":
            table.add_row(name, "—" if value is None or value == [] else str(value))
    Console().print(table)


def _keys_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Virtual keys", header_style="bold")
    for column in (
        "name",
        "id",
        "tenant",
        "hint",
        "status",
        "models",
        "rpm",
        "tpm",
        "concurrency",
        "budget",
        "expires",
        "cache",
    ):
        table.add_column(column)
    for r in rows:
        budget = r["budget"]
        table.add_row(
            r["name"],
            r["id"],
            r["tenant"] or "—",
            r["hint"],
            r["status"],
            ",".join(r["models"]) or "any",
            *(str(r[k]) if r[k] is not None else "—" for k in ("rpm", "tpm", "concurrency")),
            f"${budget['amount']:g}/{budget['period']} ({budget['action']})" if budget else "—",
            _when(r["expires_at"]),
            "on" if r["cache"] else "off",
        )
    return table


def _when(ts: float | None) -> str:
    import time

    return "—" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="A unique name (letters, digits, _ . @ -).")],
    tenant: TenantOpt = None,
    budget: BudgetOpt = None,
    budget_period: PeriodOpt = None,
    budget_action: ActionOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    concurrency: ConcurrencyOpt = None,
    models: ModelsOpt = None,
    expires: ExpiresOpt = None,
    cache: CacheOpt = True,
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it, once: only its hash is stored."""
    from ..keys.spec import KeySpec

    data = {
        "name": name,
        "tenant": tenant,
        "models": models,
        "expires": expires,
        "cache": cache,
        **_limits_data(budget, budget_period, budget_action, rpm, tpm, concurrency),
    }
    spec = _checked(lambda: KeySpec.parse(data))
    key, secret = _run(config, storage, lambda repo: repo.create(spec))
    if as_json:
        _print({"key": secret, **key.to_json()}, True)
        return
    err.print(
        f"Created key [bold]{key.name}[/bold] ({key.id}){f', tenant {key.tenant}' if key.tenant else ''}. "
        "Store it now — tollway keeps only its hash and cannot show it again:"
    )
    sys.stdout.write(secret + "\n")


def _checked(parse: Callable[[], T]) -> T:
    from ..errors import SpecError

    try:
        return parse()
    except SpecError as exc:
        raise fail(str(exc)) from None


@keys_app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted keys.")] = False,
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every key (never the secrets)."""
    keys = _run(config, storage, lambda repo: repo.list_keys(deleted=deleted, tenant=tenant))
    rows = [k.to_json() for k in keys]
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        Console().print(_keys_table(rows))


@keys_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Key id or name.")],
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One key's settings."""
    key = _run(config, storage, lambda repo: repo.get(ref, deleted=True))
    _print(key.to_json(), as_json)


@keys_app.command("update")
def update(
    ref: Annotated[str, typer.Argument(help="Key id or name.")],
    tenant: TenantOpt = None,
    budget: BudgetOpt = None,
    budget_period: PeriodOpt = None,
    budget_action: ActionOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    concurrency: ConcurrencyOpt = None,
    models: ModelsOpt = None,
    expires: ExpiresOpt = None,
    cache: Annotated[
        bool | None,
        typer.Option("--cache/--no-cache", help="Turn the response cache on or off for the key's calls."),
    ] = None,
    clear: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated settings to remove: budget, rpm, tpm, concurrency, models, expires, tenant."
        ),
    ] = None,
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a key's tenant, models, limits, budget, expiry or caching (only the options given)."""
    from ..keys.spec import check_name, parse_expires, parse_limits, parse_models

    data: dict[str, Any] = _limits_data(budget, budget_period, budget_action, rpm, tpm, concurrency)
    removed = {c.strip() for c in (clear or "").split(",") if c.strip()}
    for name in removed & {"budget", "rpm", "tpm", "concurrency"}:
        data[name] = None

    async def work(repo: Any) -> Any:
        key = await repo.get(ref)
        changes: dict[str, Any] = {}
        if tenant is not None or "tenant" in removed:
            changes["tenant"] = check_name(tenant, "tenant") if tenant else ""
        if models is not None or "models" in removed:
            changes["models"] = parse_models(models)
        if expires is not None or "expires" in removed:
            changes["expires_at"] = parse_expires(expires)
        if cache is not None:
            changes["cache"] = cache
        if data:
            changes["limits"] = parse_limits(data, key.limits)
        return await repo.update(key.id, changes)

    _print(_run(config, storage, work).to_json(), as_json)


def _status_command(name: str, status: str, doc: str) -> None:
    def command(
        ref: Annotated[str, typer.Argument(help="Key id or name.")],
        config: ConfigOpt = None,
        storage: StorageOpt = None,
    ) -> None:
        from ..keys.key import KeyStatus

        key = _run(config, storage, lambda repo: repo.set_status(ref, KeyStatus(status)))
        err.print(
            f"Key [bold]{key.name}[/bold] ({key.id}) is {status}. Running gateways stop or start "
            "accepting it within keys.refresh_interval."
        )

    command.__doc__ = doc
    keys_app.command(name)(command)


_status_command("disable", "disabled", "Stop a key from working (enable brings it back).")
_status_command("enable", "active", "Let a disabled key work again.")
_status_command("delete", "deleted", "Delete a key for good (its spend stays in the log under its name).")


@keys_app.command("rotate")
def rotate(
    ref: Annotated[str, typer.Argument(help="Key id or name.")],
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace a key's secret (same id, limits and spend); the old secret stops working."""
    key, secret = _run(config, storage, lambda repo: repo.rotate(ref))
    if as_json:
        _print({"key": secret, **key.to_json()}, True)
        return
    err.print(
        f"New secret for key [bold]{key.name}[/bold] ({key.id}); the old one stops working within "
        "keys.refresh_interval. Store it now:"
    )
    sys.stdout.write(secret + "\n")


@tenants_app.command("set")
def tenant_set(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    budget: BudgetOpt = None,
    budget_period: PeriodOpt = None,
    budget_action: ActionOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    concurrency: ConcurrencyOpt = None,
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant or replace its limits (options not given become unlimited)."""
    from ..keys.spec import check_name, parse_limits

    data = _limits_data(budget, budget_period, budget_action, rpm, tpm, concurrency)
    limits = _checked(lambda: (check_name(name, "tenant"), parse_limits(data))[1])
    tenant = _run(config, storage, lambda repo: repo.put_tenant(name, limits))
    _print(tenant.to_json(), as_json)


@tenants_app.command("list")
def tenant_list(config: ConfigOpt = None, storage: StorageOpt = None, as_json: JsonOpt = False) -> None:
    """Every tenant with limits."""
    tenants = _run(config, storage, lambda repo: repo.tenants())
    rows = [t.to_json() for t in tenants]
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(title="Tenants", header_style="bold")
    for column in ("name", "rpm", "tpm", "concurrency", "budget"):
        table.add_column(column)
    for r in rows:
        b = r["budget"]
        table.add_row(
            r["name"],
            *(str(r[k]) if r[k] is not None else "—" for k in ("rpm", "tpm", "concurrency")),
            f"${b['amount']:g}/{b['period']} ({b['action']})" if b else "—",
        )
    Console().print(table)


@tenants_app.command("show")
def tenant_show(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One tenant's limits."""
    _print(_run(config, storage, lambda repo: repo.tenant(name)).to_json(), as_json)


@tenants_app.command("delete")
def tenant_delete(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    config: ConfigOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Remove a tenant's limits (its keys keep the tenant label)."""
    _run(config, storage, lambda repo: repo.delete_tenant(name))
    err.print(f"Tenant [bold]{name}[/bold] deleted.")
