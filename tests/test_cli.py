"""The command line as a user meets it: `tollway start` with nothing configured, `tollway mock`,
`tollway demo`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import openai
from test_request_log import free_port, wait_ready

KEY_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
)


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["TOLLWAY_HOME"] = str(tmp_path / "home")
    return env


async def test_start_without_keys_serves_builtin_fakes(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollway", "start", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(tmp_path),
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", proc)
        c = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        raw = await c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-tollway-provider"] == "mock-a" and raw.parse().choices[0].message.content
        await c.close()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert "built-in fake providers" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes the pipes
    assert (tmp_path / "home" / "tollway.db").exists()


async def test_mock_command_serves_and_injects_faults(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollway", "mock", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(tmp_path),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(f"{url}/__mock/stats") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.025)
            async with s.post(f"{url}/__mock/faults", json={"status": 503, "times": 1}) as r:
                assert r.status == 200
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
            async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                assert r.status == 503
            async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                assert r.status == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # reaps it and closes the pipes


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tollway", "demo", "--requests", "300"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean_env(tmp_path), "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "success rate" in out.stdout and "100.00%" in out.stdout
    assert "total spend" in out.stdout and "tollway logs --storage" in out.stdout
    assert (tmp_path / "home" / "demo.db").exists()
