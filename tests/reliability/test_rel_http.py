"""Issue 38, a hostile OpenAI-compatible server (loopback only, each server bounded in
connections and time): a cross-origin redirect is refused and the API key never reaches
the other port; a server that drips its answer fails at the request's deadline; an
oversized answer is refused. The friendly cases (retries, cancel, the served-model check)
are tests/backends/test_openai_backend.py."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from selfguide.backends.openai_client import JSONClient
from selfguide.errors import ServerError

KEY = "sk-test-secret-38"


class RawServer:
    """A one-thread TCP server on 127.0.0.1 that runs ``handler(conn, request_bytes)`` for at
    most ``max_conns`` connections and stops after ``max_s`` seconds."""

    def __init__(self, handler, *, max_conns: int = 4, max_s: float = 30.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.requests: list[bytes] = []
        self.handler, self.max_conns, self.deadline = handler, max_conns, time.monotonic() + max_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        served = 0
        while served < self.max_conns and not self.stop.is_set() \
                and time.monotonic() < self.deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            served += 1
            with conn:
                conn.settimeout(5)
                try:
                    req = conn.recv(65536)
                    self.requests.append(req)
                    self.handler(self, conn, req)
                except OSError:
                    pass  # the client gave up: what these tests want

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture()
def servers():
    made: list[RawServer] = []
    yield lambda handler, **kw: made.append(RawServer(handler, **kw)) or made[-1]
    for s in made:
        s.close()


def _answer(conn: socket.socket, status: str, headers: dict, body: bytes = b"") -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    conn.sendall(f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body)


def _ok(srv, conn, req):
    _answer(conn, "200 OK", {"Content-Type": "application/json", "Content-Length": 15,
                             "Connection": "close"}, b'{"object":"ok"}')


@pytest.mark.parametrize("status", ["302 Found", "307 Temporary Redirect",
                                    "308 Permanent Redirect"])
def test_cross_origin_redirect_refused_and_key_never_sent(servers, status):
    other = servers(_ok)

    def redirect(srv, conn, req):
        _answer(conn, status, {"Location": f"{other.url}/models", "Content-Length": 0,
                               "Connection": "close"})

    first = servers(redirect)
    client = JSONClient(first.url, api_key=KEY, retries=2, backoff=0.01, timeout=5)
    for body in (None, {"prompt": "hi"}):  # GET and POST
        with pytest.raises(ServerError, match=r"redirect to http://127\.0\.0\.1:\d+/v1/models"
                                              r"; redirects are not followed"):
            client.request("/models", body)
    time.sleep(0.3)
    assert other.requests == []  # the other port saw nothing, so never the key
    assert len(first.requests) == 2 and all(KEY.encode() in r for r in first.requests)


def test_drip_server_fails_within_the_request_timeout(servers):
    def drip(srv, conn, req):
        _answer(conn, "200 OK", {"Content-Type": "application/json",
                                 "Content-Length": 1000})
        for _ in range(60):  # a byte a second for up to a minute (the client leaves first)
            conn.sendall(b" ")
            time.sleep(1.0)

    srv = servers(drip, max_conns=1)
    client = JSONClient(srv.url, timeout=2, retries=0)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"no complete answer within 2 s"):
        client.request("/models")
    assert time.monotonic() - t0 < 2 + 1.0


def test_drip_in_the_headers_also_hits_the_deadline(servers):
    def drip_head(srv, conn, req):
        for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60:
            conn.sendall(bytes([ch]))
            time.sleep(0.5)

    srv = servers(drip_head, max_conns=1)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="no complete answer within 1.5 s"):
        JSONClient(srv.url, timeout=1.5, retries=0).request("/models")
    assert time.monotonic() - t0 < 1.5 + 1.0


def test_retries_of_a_drip_are_bounded_too(servers):
    def drip(srv, conn, req):
        _answer(conn, "200 OK", {"Content-Length": 1000})
        for _ in range(30):
            conn.sendall(b" ")
            time.sleep(0.5)

    srv = servers(drip, max_conns=3)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="after 3 attempt"):
        JSONClient(srv.url, timeout=1, retries=2, backoff=0.01).request("/models")
    assert time.monotonic() - t0 < 3 * 1 + 1.5


@pytest.mark.parametrize("with_length", [True, False])
def test_50_mb_answer_refused(servers, with_length):
    size = 50 * 2**20

    def big(srv, conn, req):
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if with_length:
            headers["Content-Length"] = size
        _answer(conn, "200 OK", headers, b'{"choices": [{"text": "')
        chunk = b"x" * 2**20
        for _ in range(50):
            conn.sendall(chunk)

    srv = servers(big, max_conns=1)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"answered more than 32 MiB; refusing it"):
        JSONClient(srv.url, timeout=20, retries=3).request("/completions", {"prompt": "x"})
    assert time.monotonic() - t0 < 15 and len(srv.requests) == 1  # not retried
