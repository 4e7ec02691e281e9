"""The HTTP side of the OpenAI-compatible backend: JSON requests with retries, and the
served-model name check.

What it does: :class:`JSONClient` sends one JSON request (GET or POST, stdlib http.client)
under one deadline per attempt (connect and the whole body), never following a redirect and
refusing an answer over a size cap, retries 408/429/5xx answers, time-outs and dropped
connections with exponential backoff (``Retry-After`` honoured up to 60 s; the cancel flag is checked before
every attempt and while waiting) and turns everything else into a :class:`ServerError`
that names the URL and says what to check. :func:`resolve_served_model` picks the model
name to request and refuses (:class:`ModelMismatch`) one the server does not serve or that
does not look like the model being finetuned, unless the user confirms.

What it does not do: build request bodies or read completions (:mod:`.openai`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from selfguide.errors import Cancelled, ConfigError, ModelMismatch, ServerError

CancelFlag = Callable[[], bool]  # as in ``selfguide.backends`` (this module imports none)
API_KEY_ENV = "SELFGUIDE_OPENAI_API_KEY"
RETRY_STATUS = (408, 429, 500, 502, 503, 504)
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


@dataclass
class ServerInfo:
    """What a run records about the server it generated with."""

    base_url: str
    served_model: str
    reported_models: list[str] = field(default_factory=list)
    confirmed: bool = False  # the user confirmed a name that did not match

    def summary(self) -> str:
        return f"{self.served_model} served at {self.base_url}" + (
            " (name mismatch confirmed)" if self.confirmed else "")

    def to_dict(self) -> dict:
        return asdict(self)


MAX_ANSWER_BYTES = 32 * 2**20  # far above any completion; a 50 MB answer is refused


class _Status(Exception):
    """An HTTP answer >= 400 (its code, headers and the start of its body)."""

    def __init__(self, code: int, headers: Any, raw: bytes):
        super().__init__(code)
        self.code, self.headers, self.raw = code, headers, raw


class JSONClient:
    """JSON over HTTP to ``base_url`` (see module docstring); ``stats["retries"]`` counts.

    Each attempt has one deadline, ``timeout`` seconds for everything (connect, headers,
    the whole body): a server that drips a byte a second fails at it. No redirect is
    followed (an API key never goes to another origin, a POST never turns into a GET), and
    an answer over ``max_bytes`` is refused.
    """

    def __init__(self, base_url: str, *, timeout: float = 300.0, retries: int = 4,
                 backoff: float = 0.5, api_key: str | None = None,
                 max_bytes: int = MAX_ANSWER_BYTES):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.api_key = api_key
        self.max_bytes = int(max_bytes)
        self.retried = 0
        self._lock = threading.Lock()

    def request(self, path: str, body: dict | None = None, *, root: bool = False,
                cancel: CancelFlag | None = None, retry: bool = True) -> Any:
        """One JSON request; ``root``: relative to the server, not to its ``/v1``."""
        base = re.sub(r"/v1$", "", self.base_url) if root else self.base_url
        url = base + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            if cancel is not None and cancel():
                raise Cancelled("Generation cancelled.")
            try:
                raw = self._send(url, data, headers)
            except _Status as exc:
                if exc.code in RETRY_STATUS and attempt + 1 < attempts:
                    self._sleep(attempt, exc.headers.get("Retry-After"), cancel)
                    continue
                raise ServerError(f"{url} answered HTTP {exc.code}: {_error_text(exc.raw)}",
                                  hint=_status_hint(exc.code)) from None
            except (OSError, http.client.HTTPException) as exc:
                if attempt + 1 < attempts:
                    self._sleep(attempt, None, cancel)
                    continue
                reason = getattr(exc, "reason", None) or exc
                raise ServerError(f"Cannot get an answer from {url} after {attempts} "
                                  f"attempt(s): {reason!s:.200}",
                                  hint="Check that the server is running at --base-url "
                                       "and raise --request-timeout for slow models.") from exc
            return _decode(raw, url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, url: str, data: bytes | None, headers: dict[str, str]) -> bytes:
        """One attempt under one deadline; the body of a 2xx answer."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServerError(f"{url} is not an http(s) URL.", hint="Check --base-url.")
        cls = http.client.HTTPSConnection if parts.scheme == "https" else \
            http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=self.timeout)
        expired = threading.Event()
        timer = threading.Timer(self.timeout, _expire, (conn, expired))
        timer.daemon = True
        timer.start()
        try:
            conn.connect()
            if expired.is_set():
                raise TimeoutError
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET" if data is None else "POST", target, body=data,
                         headers=headers)
            resp = conn.getresponse()
            if 300 <= resp.status < 400:
                raise _redirect_error(url, resp.status, resp.getheader("Location") or "")
            raw = self._read(resp, url)
            if expired.is_set():
                raise TimeoutError
            if resp.status >= 400:
                raise _Status(resp.status, resp.headers, raw[:4096])
            return raw
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set():
                raise TimeoutError(f"no complete answer within {self.timeout:g} s "
                                   "(--request-timeout)") from exc
            raise
        finally:
            timer.cancel()
            conn.close()

    def _read(self, resp: http.client.HTTPResponse, url: str) -> bytes:
        """The whole body, refused past ``max_bytes`` (before reading it, when the server
        says its length)."""
        length = resp.getheader("Content-Length")
        too_big = ServerError(f"{url} answered more than {self.max_bytes / 2**20:.0f} MiB; "
                              "refusing it.", hint="Check --base-url: an OpenAI-compatible "
                                                   "server's answers are far smaller.")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise too_big
        chunks, total = [], 0
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > self.max_bytes:
                raise too_big
            chunks.append(chunk)

    def _sleep(self, attempt: int, retry_after: str | None, cancel: CancelFlag | None) -> None:
        delay = self.backoff * 2 ** attempt
        if retry_after and retry_after.strip().replace(".", "", 1).isdigit():
            delay = min(max(delay, float(retry_after)), 60.0)
        with self._lock:
            self.retried += 1
        end = time.monotonic() + delay
        while time.monotonic() < end:
            if cancel is not None and cancel():
                raise Cancelled("Generation cancelled.")
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def _expire(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The deadline: mark it and cut the connection, so a blocked read returns now."""
    expired.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _redirect_error(url: str, status: int, location: str) -> ServerError:
    target = urllib.parse.urljoin(url, location)
    same = urllib.parse.urlsplit(target)[:2] == urllib.parse.urlsplit(url)[:2]
    return ServerError(f"{url} answered HTTP {status}, a redirect to {target[:200]}; "
                       "redirects are not followed (an API key must not reach another "
                       "server).", hint="Point --base-url at the server's real address"
                       + (" (the one it redirects to)." if same else
                          "; a redirect to another host is refused."))


def _decode(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServerError(f"{url} answered with malformed JSON: {raw[:120]!r}",
                          hint="Is --base-url an OpenAI-compatible API root (it usually ends "
                               "in /v1)?") from exc


def _error_text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        err = json.loads(text).get("error", text)
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except (json.JSONDecodeError, AttributeError):
        return text[:300]


def _status_hint(code: int) -> str:
    if code in (401, 403):
        return f"The server wants an API key: set {API_KEY_ENV}."
    if code == 404:
        return "Check --base-url (it usually ends in /v1) and --served-model."
    return "See the server's log."


def _norm(name: str) -> str:
    base = name.strip().rstrip("/").replace("\\", "/").rsplit("/", 1)[-1].lower()
    return re.sub(r"\.gguf$", "", base)


def looks_like(served: str, model: str) -> bool:
    """Whether a served name plausibly names ``model`` (case, folders and ``.gguf`` aside;
    one contained in the other, so ``SmolLM2-135M-Instruct.Q4_1`` matches the embedded)."""
    want = _norm(EMBEDDED_NAME if model == "embedded" else model)
    got = _norm(served)
    return bool(want and got) and (want in got or got in want)


def resolve_served_model(served_model: str, model: str, reported: list[str],
                         confirm: bool) -> str:
    """The model name to request: ``served_model``, or the server's only model. Raises
    ``ModelMismatch`` when the server does not serve it, or when it does not look like the
    model being finetuned, unless ``confirm``."""
    if not served_model:
        if len(reported) > 1:
            raise ConfigError(f"The server serves several models ({', '.join(reported)}).",
                              hint="Pick one with --served-model NAME.")
        served_model = reported[0]
    elif served_model not in reported and not confirm:
        raise ModelMismatch(f"The server does not serve {served_model!r}; it serves "
                            f"{', '.join(reported)}.",
                            hint="Pass --served-model with one of those names, or "
                                 "--confirm-model true to send the name anyway.")
    if not confirm and not looks_like(served_model, model):
        raise ModelMismatch(
            f"The server serves {served_model!r}, which does not look like the model being "
            f"finetuned ({model!r}): synthetic data from another model would not match.",
            hint="Serve the same model, set --model to it, or pass --confirm-model true if "
                 "the server's name differs but the weights are the same.")
    return served_model


def parse_choices(data: Any, chat: bool, url: str) -> tuple[list[str], int | None]:
    try:
        choices = data["choices"]
        texts = [c["message"]["content"] if chat else c["text"] for c in choices]
    except (KeyError, TypeError, IndexError) as exc:
        raise ServerError(f"{url} answered without completions: {str(data)[:160]}",
                          hint="Is it an OpenAI-compatible server?") from exc
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ServerError(f"{url} answered with no completion text: {str(data)[:160]}")
    usage = data.get("usage") if isinstance(data, dict) else None
    used = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return texts, used if isinstance(used, int) else None


def record_server(run_dir: Any, generator: Any) -> None:
    """Add ``"server": {base_url, served_model, reported_models, confirmed}`` to the run's
    config.json when ``generator`` talks to a server (nothing for in-process backends)."""
    info = getattr(generator, "server", None)
    if not isinstance(info, ServerInfo):
        return
    from selfguide.runs.rundir import RunDir

    RunDir(run_dir).update_config(server=info.to_dict())
