"""Configuration: validation messages that name the key, env expansion, zero-config, and docs that
cover every setting."""

from __future__ import annotations

import re
import subprocess
import sys
from inspect import isclass
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from tollway.config import Config, expand_env, load_config, parse_config, zero_config
from tollway.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def setting_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, field in model.model_fields.items():
        ann: Any = field.annotation
        origin, args = get_origin(ann), get_args(ann)
        if isclass(ann) and issubclass(ann, BaseModel):
            paths += setting_paths(ann, f"{prefix}{name}.")
        elif origin is list and args and isclass(args[0]) and issubclass(args[0], BaseModel):
            paths += setting_paths(args[0], f"{prefix}{name}.")
        elif origin is dict and len(args) == 2 and isclass(args[1]) and issubclass(args[1], BaseModel):
            paths += setting_paths(args[1], f"{prefix}{name}.<{name.rstrip('s')}>.")
        else:
            paths.append(prefix + name)
    return paths


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()

    def norm(path: str) -> str:  # `prices.<model>.input` documents every `prices.<name>.input`
        return re.sub(r"<[a-z_]+>", "<*>", path)

    documented = {norm(p) for p in re.findall(r"`([a-z_<>.]+)`", doc)}
    missing = [p for p in setting_paths(Config) if norm(p) not in documented]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_example_config_is_valid() -> None:
    cfg = load_config(ROOT / "examples" / "tollway.toml")
    assert [p.name for p in cfg.providers] == ["openai", "groq", "local"]
    assert cfg.providers[1].models == {"gpt-4o-mini": "llama-3.1-8b-instant"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": {"port": "eighty"}}, "server.port: Input should be a valid integer"),
        ({"server": {"prot": 1}}, "server.prot: unknown setting"),
        (
            {"providers": [{"name": "a", "base_url": "ftp://x"}]},
            "providers[0]: base_url must start with http",
        ),
        ({"providers": [{"kind": "openai"}]}, "providers[0].name: Field required"),
        ({"providers": [{"name": "a", "kind": "nope"}]}, "providers[0].kind: Input should be"),
        ({"providers": [{"name": "a"}, {"name": "a"}]}, "provider names must be unique; repeated: a"),
        ({"providers": [{"name": "a"}], "aliases": {"x": ["b/m"]}}, "aliases.x: unknown provider 'b'"),
        ({"providers": [{"name": "a"}], "aliases": {"x": ["nomodel"]}}, "not of the form 'provider/model'"),
        (
            {"prices": {"m": {"input": -1, "output": 1}}},
            "prices.m.input: Input should be greater than or equal to 0",
        ),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert message in str(info.value)


def test_env_expansion() -> None:
    env = {"KEY": "sk-abc"}
    assert expand_env({"a": ["${KEY}", "x${MISSING:-def}y"]}, env) == {"a": ["sk-abc", "xdefy"]}
    with pytest.raises(ConfigError, match="MISSING is referenced"):
        expand_env("${MISSING}", env)
    cfg = parse_config({"providers": [{"name": "o", "api_key": "${KEY}"}]}, env)
    assert cfg.providers[0].api_key == "sk-abc"


def test_zero_config_from_environment() -> None:
    cfg = zero_config({"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gsk-2"})
    assert [(p.name, p.kind, p.api_key) for p in cfg.providers] == [
        ("openai", "openai", "sk-1"),
        ("groq", "groq", "gsk-2"),
    ]
    assert cfg.providers[1].base_url == "https://api.groq.com/openai/v1"
    assert zero_config({}).providers == []
    assert [p.name for p in zero_config({}, ollama=True).providers] == ["ollama"]


def test_models_list_or_table() -> None:
    cfg = parse_config({"providers": [{"name": "a", "models": ["x"]}, {"name": "b", "models": {"x": "y"}}]})
    assert cfg.providers[0].models == {"x": "x"} and cfg.providers[1].models == {"x": "y"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollway", *args], check=False, capture_output=True, text=True, timeout=60
    )


def test_check_config_command(tmp_path: Path) -> None:
    ok = _cli("check-config", str(ROOT / "examples" / "tollway.toml"))
    assert ok.returncode == 0, ok.stderr
    assert "gpt-4o-mini: tries openai/gpt-4o-mini → groq/llama-3.1-8b-instant" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[providers]]\nname = "a"\ntimeout = -1\n')
    out = _cli("check-config", str(bad))
    assert out.returncode == 1 and "providers[0].timeout" in out.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    out = _cli("check-config", str(broken))
    assert out.returncode == 1 and "not valid TOML" in out.stderr


def test_zero_config_native_protocols() -> None:
    cfg = zero_config({"ANTHROPIC_API_KEY": "sk-ant-1", "GOOGLE_API_KEY": "g-2"})
    assert [(p.name, p.kind, p.api_key) for p in cfg.providers] == [
        ("anthropic", "anthropic", "sk-ant-1"),
        ("gemini", "gemini", "g-2"),
    ]
    assert cfg.providers[1].base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert zero_config({"GEMINI_API_KEY": "a", "GOOGLE_API_KEY": "b"}).providers[0].api_key == "a"
