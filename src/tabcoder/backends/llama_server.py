"""The local model's own process: one GGUF loaded with llama-cpp-python, served as an OpenAI-compatible
chat-completions endpoint on 127.0.0.1.

Run as `python -m tabcoder.backends.llama_server --path MODEL.gguf --model-id ID ...`; the supervisor
(`tabcoder.backends.model_process`) starts it, reads one JSON line `{"ready": true, "port": ...}` from its
stdout once the model is loaded, and talks to it like any server. A native crash, an abort or an
out-of-memory kill therefore ends this process, not the run that uses it.

Endpoints: `POST /v1/chat/completions` (messages, temperature, top_p, max_tokens, seed, stop), `GET /health`,
`GET /v1/models`. Replies carry `usage.prompt_tokens_details.cached_tokens` (prompt tokens reused from the
KV cache) and llama.cpp server's `timings` (`prompt_n`, `prompt_ms`, `predicted_n`, `predicted_ms`). Calls
are served one at a time by one llama context, so the prefix cache carries over between calls as it does
in-process. Every request must carry the bearer token that the first line of stdin gives.

The process ends by itself when its parent dies (checked every second), so a `kill -9` of tabcoder
leaves no model behind holding a gigabyte of memory.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 64 * 1024 * 1024
GENERATION_KEYS = {"temperature": float, "top_p": float, "max_tokens": int, "seed": int}


class RequestError(Exception):
    """A request this server cannot serve (HTTP 400): a bad body, or a prompt that does not fit."""


def completion_request(body: Any) -> dict[str, Any]:
    """The keyword arguments of `Backend.complete` read from a chat-completions request body."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise RequestError("every message needs a 'role' and a string 'content'")
    options: dict[str, Any] = {"messages": messages}
    for key, kind in GENERATION_KEYS.items():
        if body.get(key) is not None:
            try:
                options[key] = kind(body[key])
            except (TypeError, ValueError):
                raise RequestError(f"{key!r} must be a number, got {body[key]!r}") from None
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestError("'stop' must be a string or a list of strings")
        options["stop"] = stop
    return options


def completion_reply(completion: Any) -> dict[str, Any]:
    """An OpenAI chat-completions reply for a `Completion`, with llama.cpp server's `timings`."""
    usage: dict[str, Any] = {"prompt_tokens": completion.prompt_tokens,
                             "completion_tokens": completion.completion_tokens,
                             "total_tokens": completion.prompt_tokens + completion.completion_tokens}
    if completion.cached_prompt_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": completion.cached_prompt_tokens}
    reply: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
        "model": completion.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": completion.text},
                     "finish_reason": completion.finish_reason}],
        "usage": usage,
    }
    if completion.prompt_seconds is not None:
        evaluated = completion.prompt_tokens - (completion.cached_prompt_tokens or 0)
        generated_ms = max(0.0, completion.seconds - completion.prompt_seconds) * 1000
        reply["timings"] = {"prompt_n": evaluated, "prompt_ms": completion.prompt_seconds * 1000,
                            "predicted_n": completion.completion_tokens, "predicted_ms": generated_ms}
    return reply


def _handler(backend: Any, token: str) -> type[BaseHTTPRequestHandler]:
    from tabcoder.errors import LLMError

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # the supervisor keeps stderr for faults only
            pass

        def _authorised(self) -> bool:
            given = self.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return True
            self._send(401, {"error": {"message": "missing or wrong bearer token"}})
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path == "/health":
                return self._send(200, {"status": "ok", "model": backend.model_id})
            if self.path == "/v1/models":
                return self._send(200, {"object": "list", "data": [{"id": backend.model_id, "object": "model"}]})
            self._send(404, {"error": {"message": f"no such endpoint {self.path}"}})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no such endpoint {self.path}"}})
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY_BYTES:
                    raise RequestError(f"the request body must be 1 to {MAX_BODY_BYTES} bytes")
                options = completion_request(json.loads(self.rfile.read(length)))
                completion = backend.complete(options.pop("messages"), **options)
            except (RequestError, ValueError) as exc:
                return self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            except LLMError as exc:  # the prompt does not fit, or llama.cpp refused it: not worth a retry
                return self._send(400, {"error": {"message": str(exc), "type": "llama_cpp_error"}})
            except Exception as exc:  # noqa: BLE001 - any other fault is the server's, reported as such
                return self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}", "type": "server_error"}})
            self._send(200, completion_reply(completion))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def _exit_with_parent(parent: int) -> None:
    """End this process as soon as the process that started it is gone."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tabcoder.backends.llama_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", required=True, help="GGUF file")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--n-batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra-bufts", choices=("on", "off"), default="off")
    parser.add_argument("--parent", type=int, default=None, help="exit when this process is gone (default: the parent)")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    token = sys.stdin.readline().strip()
    if not token:
        print("error: no bearer token on stdin; this process is started by tabcoder", file=sys.stderr)
        return 2
    parent = args.parent if args.parent is not None else os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()

    from tabcoder.backends.llamacpp import LlamaCppBackend
    from tabcoder.errors import TabcoderError

    try:
        backend = LlamaCppBackend(args.path, model_id=args.model_id, threads=args.threads, n_ctx=args.n_ctx,
                                  n_batch=args.n_batch, seed=args.seed, verbose=args.verbose,
                                  extra_bufts=args.extra_bufts == "on")
    except TabcoderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(backend, token))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    ready = {"ready": True, "port": server.server_address[1], "pid": os.getpid(),
             "load_seconds": round(backend.load_seconds, 3), "extra_bufts": backend.extra_bufts}
    print(json.dumps(ready), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
