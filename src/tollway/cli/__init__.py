"""The ``tollway`` command: start, mock, demo, logs, spend, check-config here; keys and tenants in
``keys``; the tables ``logs`` and ``spend`` print in ``reports``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..config import storage_url
from .common import StorageOpt, config_or_default, console, fail, load, log_url
from .keys import keys_app, tenants_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help="tollway: an LLM API gateway.")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]


@app.command()
def start(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 4000].")] = None,
) -> None:
    """Run the gateway. Without --config, providers come from OPENAI_API_KEY, MISTRAL_API_KEY, … ."""
    import uvicorn

    from ..server import Gateway, uvicorn_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load(config)
    bind_host = host or cfg.server.host
    bind_port = cfg.server.port if port is None else port
    embedded_mock = not cfg.providers
    gateway = Gateway(cfg, embedded_mock=embedded_mock, tune_gc=True)
    if embedded_mock:
        console.print(
            "[yellow]No provider keys or config found: serving the built-in fake providers "
            "(mock-a, mock-b) so you can try tollway. Set OPENAI_API_KEY (or others) or use "
            "--config for real providers.[/yellow]"
        )
    console.print(
        f"tollway listening on [bold]http://{bind_host}:{bind_port}/v1[/bold]   log: {storage_url(cfg)}"
    )
    # uvicorn re-raises the stop signal once it has shut down; by then every queued log row is
    # flushed, so a graceful stop (SIGTERM/SIGINT) ends with exit status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(uvicorn_config(gateway, bind_host, bind_port)).run()


@app.command()
def mock(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9000,
    api_key: Annotated[str | None, typer.Option(help="Require this bearer key.")] = None,
    strict_models: Annotated[bool, typer.Option(help="Answer 404 for models not in the list.")] = False,
    chunk_delay_ms: Annotated[float, typer.Option(help="Delay between streamed chunks.")] = 0.0,
    reply_words: Annotated[int, typer.Option(help="Words in each reply.")] = 12,
) -> None:
    """Run the built-in fake providers (OpenAI wire format) with fault injection."""
    from ..mock import MockOptions, run

    run(
        host,
        port,
        MockOptions(
            api_key=api_key,
            strict_models=strict_models,
            chunk_delay_ms=chunk_delay_ms,
            reply_words=reply_words,
        ),
    )


@app.command()
def demo(
    requests: Annotated[int, typer.Option(help="How many requests to send.")] = 2000,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 16,
) -> None:
    """Fake providers + the gateway + the official openai SDK, with one provider failing mid-run."""
    try:
        import openai  # noqa: F401  - the demo's client, as in a user's app
    except ImportError:
        raise fail(
            "the demo drives tollway with the official OpenAI SDK: pip install 'tollway[demo]'"
        ) from None
    from ..demo import run_demo

    asyncio.run(run_demo(requests=requests, concurrency=concurrency))


@app.command()
def logs(
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent calls.")] = 30,
    model: Annotated[str | None, typer.Option(help="Only this requested model.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    errors: Annotated[bool, typer.Option("--errors", help="Only failed calls.")] = False,
) -> None:
    """Recent calls as a table."""
    from .reports import print_logs

    url = log_url(config, storage)
    asyncio.run(print_logs(url, limit, model=model, provider=provider, status="error" if errors else None))


@app.command()
def spend(
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    by: Annotated[
        str,
        typer.Option(help="Group by: comma-separated of provider, model, upstream_model, key, tenant, day."),
    ] = "provider,model",
    period: Annotated[
        str | None,
        typer.Option(
            help="today, week, month, all or a duration like 24h, 7d, on the budgets.timezone calendar "
            "[default: today and month]."
        ),
    ] = None,
) -> None:
    """Spend by provider and model (today and this month unless --period)."""
    from .reports import print_spend

    cfg = config_or_default(config)
    url = storage or storage_url(cfg)
    groups = [g.strip() for g in by.split(",") if g.strip()]
    periods = [period] if period else ["today", "month"]
    for p in periods:
        asyncio.run(print_spend(url, groups, p, timezone=cfg.budgets.timezone))


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="The TOML file to check.")]) -> None:
    """Validate a config file and explain what it will do."""
    from ..routing import Router
    from ..server import make_upstream

    cfg = load(path)
    out = Console()
    out.print(f"[green]{path} is valid.[/green]")
    out.print(f"listen: http://{cfg.server.host}:{cfg.server.port}/v1   log: {storage_url(cfg)}")
    for p in cfg.providers:
        key = "key set" if p.api_key else "no key"
        out.print(
            f"provider [bold]{p.name}[/bold] ({p.kind}) {p.base_url}  {key}, priority {p.priority}, "
            f"weight {p.weight}, timeout {p.timeout}s"
        )
    router = Router(cfg, make_upstream)
    for model in router.models():
        chain = " → ".join(d.key for d in router.candidates(model))
        out.print(f"model [bold]{model}[/bold]: tries {chain}")
    for name, price in cfg.prices.items():
        out.print(f"price override {name}: ${price.input}/M in, ${price.output}/M out")
    lim = cfg.limits
    where = (
        f"redis {lim.redis_url} (prefix {lim.redis_prefix}; if unreachable: {lim.on_unavailable})"
        if lim.backend == "redis"
        else "memory (this process only)"
    )
    out.print(f"limits and budgets counted in {where}; budget calendar {cfg.budgets.timezone}")
    for b in cfg.budgets.gateway:
        out.print(f"gateway budget: ${b.amount:g} per {b.period} ({b.action})")
    if not cfg.providers:
        out.print("[yellow]no providers: `tollway start` would serve the built-in fake providers[/yellow]")


app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
