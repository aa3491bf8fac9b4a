"""What every ``tollway`` subcommand shares: the error console, how a command fails (one red line,
exit status 1), and how it finds its config and the log database's URL."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..config import Config, load_config, storage_url, zero_config
from ..errors import ConfigError

console = Console(stderr=True, soft_wrap=True)

StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="Log storage URL (sqlite:///… or postgresql://…).")
]


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the caller raises what this returns (so the type checker sees
    that the command stops there)."""
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def load(path: Path | None) -> Config:
    """The config at ``path``; without one, the zero-config setup from the environment."""
    try:
        return load_config(path) if path else zero_config(ollama=_ollama_answers())
    except ConfigError as exc:
        raise fail(f"invalid config {path}:\n{exc}") from None


def config_or_default(path: Path | None) -> Config:
    """The config at ``path``; without one the defaults (a command that reads the log needs no
    providers, so nothing is probed)."""
    return load(path) if path else Config()


def log_url(config: Path | None, storage: str | None) -> str:
    """The log database a command reads: ``--storage``, else the config's, else the default."""
    return storage or storage_url(config_or_default(config))


def _ollama_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 11434), timeout=0.2):
            return True
    except OSError:
        return False
