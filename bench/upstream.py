"""A near-zero-cost fake upstream: nginx answering every chat completion with a fixed body.

nginx serves the canned answers straight from its config (``return 200 '…'``), so the upstream
costs microseconds and the benchmark measures the proxy, not the fake provider.

- 127.0.0.1:18080 ``POST /v1/chat/completions`` → a fixed ``chat.completion`` JSON with usage
- 127.0.0.1:18081 ``POST /v1/chat/completions`` → a fixed SSE stream of ``chat.completion.chunk``
  events, a usage chunk and ``data: [DONE]`` (nginx cannot cheaply read the request body to look
  for ``"stream":true``, so streaming gets its own port; the gateway under test routes a separate
  model name to it). ``/stream/v1/chat/completions`` on 18080 serves the same stream.

``bench/streams.py`` has an nginx of its own (``streams_config``, ports 18380-18383): a whole answer
for its readiness probe, and one fixed stream per protocol — OpenAI's (13 content chunks, a finish
chunk, a usage chunk, ``[DONE]``), Anthropic's and Gemini's — carrying the same text, each answering
every request on its port.

Run by hand: ``python bench/upstream.py`` (Ctrl-C stops it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"

JSON_PORT = 18080
SSE_PORT = 18081

_CREATED = 1_700_000_000
_ID = "chatcmpl-bench0000000000000000000000"

COMPLETION = {
    "id": _ID,
    "object": "chat.completion",
    "created": _CREATED,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 8,
        "completion_tokens": 9,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_bench",
}


def _chunk(
    delta: dict[str, object],
    finish: str | None = None,
    usage: dict[str, object] | None = None,
    with_choice: bool = True,
) -> dict[str, object]:
    return {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if with_choice
        else [],
        "usage": usage,
    }


STREAM_EVENTS = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Hello"}),
    _chunk({"content": "! How"}),
    _chunk({"content": " can I"}),
    _chunk({"content": " help?"}),
    _chunk({}, finish="stop"),
    _chunk({}, usage={"prompt_tokens": 8, "completion_tokens": 6, "total_tokens": 14}, with_choice=False),
]


def completion_body() -> str:
    return json.dumps(COMPLETION, separators=(",", ":"))


def stream_body() -> str:
    events = "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in STREAM_EVENTS)
    return events + "data: [DONE]\n\n"


# ---------------------------------------------------------------- bench/streams.py's fixed streams

# The text every fixed stream below carries, one piece per content event.
STREAM_TEXT = (
    "Hello",
    "!",
    " How",
    " can",
    " I",
    " help",
    " you",
    " today",
    "?",
    " Ask",
    " me",
    " anything.",
)
STREAM_USAGE = {
    "prompt_tokens": 8,
    "completion_tokens": len(STREAM_TEXT),
    "total_tokens": 8 + len(STREAM_TEXT),
}


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def openai_long_stream_body() -> str:
    """OpenAI's stream with ``include_usage``: a role chunk and 12 text chunks (13 content chunks),
    a finish chunk, a usage chunk (``"usage": null`` on every other chunk, as OpenAI sends), ``[DONE]``."""
    events = [
        _chunk({"role": "assistant", "content": "", "refusal": None}),
        *(_chunk({"content": piece}) for piece in STREAM_TEXT),
        _chunk({}, finish="stop"),
        _chunk({}, usage=dict(STREAM_USAGE), with_choice=False),
    ]
    return "".join(f"data: {_compact(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def anthropic_stream_body() -> str:
    """Anthropic's Messages stream as the API sends it: ``message_start``, ``ping``, one text block
    (start, a delta per piece, stop), ``message_delta`` with the stop reason and output tokens,
    ``message_stop``; every event named, no ``[DONE]``."""
    message = {
        "id": "msg_bench00000000000000000000",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": STREAM_USAGE["prompt_tokens"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
            "service_tier": "standard",
        },
    }
    events: list[tuple[str, dict[str, object]]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
        *(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
            for piece in STREAM_TEXT
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": STREAM_USAGE["completion_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {name}\ndata: {_compact(data)}\n\n" for name, data in events)


def gemini_stream_body() -> str:
    """Gemini's ``streamGenerateContent?alt=sse``: one response per piece, CRLF line endings, no
    ``[DONE]``; every response carries the prompt's usage, the last one ``finishReason`` and the
    complete usage."""
    prompt = STREAM_USAGE["prompt_tokens"]

    def response(piece: str, last: bool) -> dict[str, object]:
        candidate: dict[str, object] = {"content": {"parts": [{"text": piece}], "role": "model"}}
        usage: dict[str, object] = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        if last:
            candidate["finishReason"] = "STOP"
            output = STREAM_USAGE["completion_tokens"]
            usage = {
                "promptTokenCount": prompt,
                "candidatesTokenCount": output,
                "totalTokenCount": prompt + output,
            }
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": "gemini-2.5-flash",
            "responseId": "bench0000000000000000000",
        }

    last = len(STREAM_TEXT) - 1
    return "".join(f"data: {_compact(response(p, i == last))}\r\n\r\n" for i, p in enumerate(STREAM_TEXT))


def _nginx_quote(text: str) -> str:
    """A single-quoted nginx string; newlines become nginx's ``\\n`` escape."""
    if "$" in text or "\\" in text:
        raise ValueError("nginx would interpolate '$' and escapes; keep the canned bodies free of them")
    return "'" + text.replace("'", "\\'").replace("\r", "\\r").replace("\n", "\\n") + "'"


def nginx_config(work: Path = WORK_DIR) -> str:
    models = json.dumps(
        {
            "object": "list",
            "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": _CREATED, "owned_by": "bench"},
                {"id": "gpt-4o-mini-stream", "object": "model", "created": _CREATED, "owned_by": "bench"},
            ],
        },
        separators=(",", ":"),
    )
    json_body, sse_body = _nginx_quote(completion_body()), _nginx_quote(stream_body())
    return _main_config(
        work,
        f"""    server {{
        listen 127.0.0.1:{JSON_PORT} backlog=4096;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 {json_body};
        }}
        location = /stream/v1/chat/completions {{
            default_type text/event-stream;
            return 200 {sse_body};
        }}
        location = /v1/models {{
            default_type application/json;
            return 200 '{models}';
        }}
        location / {{
            default_type application/json;
            return 404 '{{"error":{{"message":"not found","type":"invalid_request_error"}}}}';
        }}
    }}

    server {{
        listen 127.0.0.1:{SSE_PORT} backlog=4096;
        location = /v1/chat/completions {{
            default_type text/event-stream;
            return 200 {sse_body};
        }}
        location = /v1/models {{
            default_type application/json;
            return 200 '{models}';
        }}
        location / {{
            default_type application/json;
            return 404 '{{"error":{{"message":"not found","type":"invalid_request_error"}}}}';
        }}
    }}
""",
    )


def _nginx_long_return(text: str, name: str, piece: int = 3000) -> str:
    """``return 200`` of a body longer than one nginx config token may be (4 KiB): the body is cut
    into variables set in the same location (``$<name>_0`` …) and returned joined."""
    pieces = [text[i : i + piece] for i in range(0, len(text), piece)]
    sets = "".join(f"            set ${name}_{i} {_nginx_quote(part)};\n" for i, part in enumerate(pieces))
    joined = "".join(f"${name}_{i}" for i in range(len(pieces)))
    return f'{sets}            return 200 "{joined}";'


def streams_config(work: Path, json_port: int, sse_ports: dict[str, int]) -> str:
    """bench/streams.py's nginx: the whole answer on ``json_port`` (the gateways' readiness probe),
    and on each of ``sse_ports`` (``"openai"``, ``"anthropic"``, ``"gemini"``) that protocol's fixed
    stream for every request, whatever its path (Gemini's model and action are in the path)."""
    bodies = {
        "openai": openai_long_stream_body,
        "anthropic": anthropic_stream_body,
        "gemini": gemini_stream_body,
    }
    servers = [
        f"""    server {{
        listen 127.0.0.1:{json_port} backlog=4096;
        location / {{
            default_type application/json;
            return 200 {_nginx_quote(completion_body())};
        }}
    }}
"""
    ]
    for protocol, port in sse_ports.items():
        servers.append(
            f"""    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/event-stream;
{_nginx_long_return(bodies[protocol](), protocol)}
        }}
    }}
"""
        )
    return _main_config(work, "\n".join(servers))


def _main_config(work: Path, servers: str) -> str:
    """nginx's whole config around ``servers``: one worker, files under ``work``, long keep-alive."""
    temp = "\n".join(
        f"    {kind}_temp_path {work}/nginx-tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# generated by bench/upstream.py — do not edit
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temp}
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_buffer_size 64k;
    server_tokens off;

{servers}}}
"""


def ensure_tools() -> None:
    """Install nginx and wrk from Debian when missing (the benchmark machine runs as root)."""
    if shutil.which("nginx") and shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("nginx and wrk are needed: apt-get install -y nginx wrk")
    print("installing nginx and wrk (apt-get) …", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "wrk"], check=True, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"nginx and wrk are needed and could not be installed ({exc}): apt-get install -y nginx wrk")
    if not (shutil.which("nginx") and shutil.which("wrk")):
        sys.exit("nginx and wrk are needed and are still not on PATH after apt-get install -y nginx wrk")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class Nginx:
    """nginx in the foreground, under our control: ``start()`` … ``stop()``."""

    def __init__(
        self,
        work: Path = WORK_DIR,
        cpu: str | None = "1",
        config: Callable[[Path], str] | None = None,
        ports: tuple[int, ...] | None = None,
    ) -> None:
        """``config`` (default ``nginx_config``) writes the config for a work directory; ``ports``
        (default ``JSON_PORT`` and ``SSE_PORT`` as they are at ``start()``) are the ones it listens on."""
        self.work = work
        self.cpu = cpu
        self.config = config
        self.ports = ports
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        ensure_tools()
        ports = self.ports or (JSON_PORT, SSE_PORT)
        for port in ports:
            if port_open(port):
                raise RuntimeError(f"port {port} is already taken; stop whatever holds it first")
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "nginx-tmp").mkdir(exist_ok=True)
        conf = self.work / "nginx.conf"
        conf.write_text((self.config or nginx_config)(self.work))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        base = [nginx, "-p", str(self.work), "-e", str(self.work / "nginx-error.log"), "-c", str(conf)]
        subprocess.run([*base, "-t", "-q"], check=True)
        cmd = [*base, "-g", "daemon off;"]
        if self.cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", self.cpu, *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not all(port_open(port) for port in ports):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {self.proc.returncode}; see {self.work}/nginx-error.log"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nginx did not start listening in time")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its worker and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Nginx() as server:
        print(
            f"nginx upstream on 127.0.0.1:{JSON_PORT} (JSON) and 127.0.0.1:{SSE_PORT} (SSE); Ctrl-C stops it"
        )
        try:
            assert server.proc is not None
            server.proc.wait()
        except (KeyboardInterrupt, SystemExit):
            pass
