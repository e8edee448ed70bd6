"""Fixtures shared by the test modules: a fake OpenAI-compatible server on 127.0.0.1 that injects faults, and a
listening localhost socket. Plain helpers (paths, scripts, the CLI runner, journal readers) are in support.py."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# Every progress event the library emits must be one the printer knows: under the tests an unknown kind
# raises, here and in every `tabcoder` process a test starts (they inherit the environment).
os.environ.setdefault("TABCODER_STRICT_EVENTS", "1")


class FakeOpenAI:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1, answering from a script of replies.

    `reply(kind, arg)` queues one answer: "ok" (arg: the JSON reply, default `default_reply`), "status"
    (arg: an HTTP status, or (status, headers)), "hang" (arg: seconds to hold the request before dropping
    it), "raw" (arg: bytes sent as a 200 body), "truncated" (a body shorter than its Content-Length), "text"
    (arg: the assistant's content). With an empty script, or after `always(kind, arg)`, every request gets
    that answer. `requests` records (path, headers, body)."""

    def __init__(self) -> None:
        self.script: list[tuple[str, Any]] = []
        self.fallback: tuple[str, Any] = ("ok", None)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append((self.path, dict(self.headers), body))
                    kind, arg = fake.script.pop(0) if fake.script else fake.fallback
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                if kind == "hang":
                    fake.release.wait(arg)
                    self.close_connection = True
                    return
                if kind == "status":
                    status, headers = arg if isinstance(arg, tuple) else (arg, {})
                    return self._send(status, {"error": {"message": f"fake error {status}"}}, headers)
                if kind == "raw":
                    return self._send_bytes(200, arg)
                if kind == "truncated":
                    raw = json.dumps(fake.default_reply(body)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw[: len(raw) // 2])
                    self.close_connection = True
                    return
                if kind == "text":
                    reply = fake.default_reply(body)
                    reply["choices"][0]["message"]["content"] = arg
                    return self._send(200, reply)
                return self._send(200, arg or fake.default_reply(body))

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), headers)

            def _send_bytes(self, status: int, raw: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @staticmethod
    def default_reply(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 17, "completion_tokens": 1, "total_tokens": 18,
                      "prompt_tokens_details": {"cached_tokens": 5}},
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply(self, kind: str, arg: Any = None) -> None:
        with self._lock:
            self.script.append((kind, arg))

    def always(self, kind: str, arg: Any = None) -> None:
        """Answer every request after the scripted ones this way."""
        with self._lock:
            self.fallback = (kind, arg)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def tcp_server():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()
