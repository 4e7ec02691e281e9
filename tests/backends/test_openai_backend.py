"""The OpenAI-compatible backend against a small in-test server (127.0.0.1 only).

The server (stdlib http.server in a thread) speaks /v1/models, /v1/completions (with
echo + logprobs), /v1/chat/completions and /tokenize, answers from a script like the fake
backend's, and injects faults on request: slow answers, HTTP 500/429, malformed JSON,
dropped connections, no logprobs.
"""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selfguide import cli
from selfguide.backends import available, get_generator
from selfguide.backends.openai import OpenAIGenerator
from selfguide.errors import Cancelled, ConfigError, ModelMismatch, ScoringUnavailable, ServerError
from selfguide.runs import store
from selfguide.settings.fields import ModelConfig, SamplingConfig

NOUNS = ["apple", "river", "table", "cloud", "stone", "garden", "window", "music", "paper"]


def default_script(prompt: str, body: dict, i: int) -> str:
    return f"echo:{prompt[-12:]}|t={body.get('temperature')}|s={body.get('seed')}|{i}"


class FakeServer:
    """A loopback OpenAI-compatible server; ``faults`` is a list consumed one per request
    (``"slow"``, ``"500"``, ``"429"``, ``"badjson"``, ``"drop"``); ``requests`` records
    (path, body)."""

    def __init__(self, script=default_script, *, models=("tiny",), honour_n=True,
                 logprobs=True, tokenize=True, delay=0.0):
        self.script, self.models, self.honour_n = script, list(models), honour_n
        self.logprobs, self.tokenize, self.delay = logprobs, tokenize, delay
        self.faults: list[str] = []
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_GET(self):
                outer.handle(self, None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.handle(self, json.loads(self.rfile.read(n) or b"{}"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h: BaseHTTPRequestHandler, body: dict | None) -> None:
        with self.lock:
            self.requests.append((h.path, body))
            fault = self.faults.pop(0) if self.faults else None
        if self.delay:
            time.sleep(self.delay)
        if fault == "slow":
            time.sleep(1.0)
        if fault in ("500", "429"):
            return self.send(h, int(fault), {"error": {"message": "try again"}},
                             {"Retry-After": "0"} if fault == "429" else None)
        if fault == "badjson":
            return self.send(h, 200, b"{not json")
        if fault == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
            return None
        if h.path == "/v1/models":
            return self.send(h, 200, {"object": "list", "data": [{"id": m} for m in self.models]})
        if h.path == "/tokenize" and self.tokenize:
            return self.send(h, 200, {"tokens": list(range(len(body["content"].split())))})
        if h.path == "/v1/completions" and body.get("echo"):
            return self.send(h, 200 if self.logprobs else 400, self.scored(body)
                             if self.logprobs else {"error": {"message": "echo unsupported"}})
        if h.path in ("/v1/completions", "/v1/chat/completions"):
            return self.send(h, 200, self.complete(h.path, body))
        return self.send(h, 404, {"error": {"message": f"no route {h.path}"}})

    def complete(self, path: str, body: dict) -> dict:
        chat = path.endswith("chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        n = body.get("n", 1) if self.honour_n else 1
        texts = [self.script(prompt, body, i) for i in range(n)]
        for s in body.get("stop") or ():
            texts = [t.split(s)[0] if s in t else t for t in texts]
        choices = [{"index": i, "message": {"role": "assistant", "content": t}} if chat
                   else {"index": i, "text": t} for i, t in enumerate(texts)]
        return {"choices": choices, "model": body["model"],
                "usage": {"completion_tokens": sum(len(t.split()) for t in texts)}}

    @staticmethod
    def scored(body: dict) -> dict:
        """Word tokens; the log-probability of a word is -len(word) (-0.1 for 'yes').
        Like llama-cpp-python, special tokens (``<|...|>``) are echoed as empty strings."""
        text = body["prompt"]
        toks, offs, pos = [], [], 0
        for w in text.split(" "):
            toks.append("" if w.startswith("<|") else w if not toks else " " + w)
            offs.append(pos)
            pos += len(toks[-1])
        lps = [None] + [-0.1 if t.strip() == "yes" else -float(len(t.strip()))
                        for t in toks[1:]]
        return {"choices": [{"text": text + " x", "logprobs": {
            "tokens": toks + [" x"], "token_logprobs": lps + [-1.0],
            "text_offset": offs + [pos]}}]}

    @staticmethod
    def send(h, code: int, payload, headers=None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


@pytest.fixture()
def server():
    srv = FakeServer()
    yield srv
    srv.close()


def gen_for(srv: FakeServer, **kw) -> OpenAIGenerator:
    kw.setdefault("model", "tiny")
    kw.setdefault("backoff", 0.01)
    return OpenAIGenerator(srv.url, **kw)


GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=8)
SAMPLED = SamplingConfig(temperature=0.8, max_new_tokens=8, seed=3)


# --------------------------------------------------------------------------- protocol

def test_registry_and_model_config_build_it(server):
    assert "openai" in available()
    gen = get_generator("openai", config=ModelConfig(model="tiny", backend="openai",
                                                     base_url=server.url))
    assert gen.name == "openai" and gen.server.served_model == "tiny"
    assert gen.server.to_dict() == {"base_url": server.url, "served_model": "tiny",
                                    "reported_models": ["tiny"], "confirmed": False}
    from selfguide import backends

    cfg = ModelConfig(model="tiny", backend="openai", base_url=server.url + "/")
    assert isinstance(backends.get_generator(cfg.backend, config=cfg), OpenAIGenerator)


def test_chat_and_plain_go_to_their_endpoints_with_the_sampling(server):
    gen = gen_for(server)
    sampling = SamplingConfig(temperature=0.5, top_p=0.9, top_k=5, max_new_tokens=7, seed=11,
                              stop=("|s=",))
    out = gen.generate(["hello there", "second"], sampling, chat=True)
    assert out == [["echo:hello there|t=0.5"], ["echo:second|t=0.5"]]
    body = next(b for p, b in server.requests
                if "chat" in p and b["messages"][0]["content"] == "hello there")
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert (body["max_tokens"], body["top_p"], body["top_k"], body["stop"]) == (7, 0.9, 5,
                                                                                ["|s="])
    assert body["model"] == "tiny" and body["seed"] == 11  # prompt 0: seed + 0
    gen.generate(["plain"], sampling, chat=False)
    assert server.requests[-1][0] == "/v1/completions"
    assert server.requests[-1][1]["prompt"] == "plain"


def test_n_samples_in_one_request_or_topped_up(server):
    gen = gen_for(server)
    results = {}
    out = gen.generate(["a", "b", "c"], SAMPLED, n=3,
                       on_result=lambda i, comps: results.setdefault(i, comps))
    assert [len(o) for o in out] == [3, 3, 3] and results == dict(enumerate(out))
    assert len(set(out[0])) == 3
    assert sum(1 for p, _ in server.requests if "completions" in p) == 3
    server.honour_n = False  # llama.cpp-like: one choice per request
    n_before = len(server.requests)
    out = gen.generate(["a"], SAMPLED, n=3)
    assert len(out[0]) == 3 and len(set(out[0])) == 3
    assert len(server.requests) - n_before == 3
    # greedy: one request, n copies
    n_before = len(server.requests)
    assert gen.generate(["a"], GREEDY, n=4)[0] == [gen.generate(["a"], GREEDY)[0][0]] * 4
    assert len(server.requests) - n_before == 2


def test_progress_counts_prompts_and_tokens(server):
    gen = gen_for(server, concurrency=2)
    seen = []
    out = gen.generate([f"p{i}" for i in range(5)], GREEDY,
                       progress=lambda d, t, tok: seen.append((d, t, tok)))
    assert len(out) == 5 and [s[0] for s in seen] == [1, 2, 3, 4, 5]
    assert all(t == 5 for _, t, _ in seen) and seen[-1][2] == gen.stats["generated_tokens"] > 0


def test_score_options_sums_option_logprobs(server):
    gen = gen_for(server)
    scores = gen.score_options(["is it good?", "and this"], [" yes", " no way"], chat=False)
    assert scores == [[-0.1, -5.0], [-0.1, -5.0]]
    bodies = [b for p, b in server.requests if b and b.get("echo")]
    assert len(bodies) == 4 and all(b["logprobs"] == 1 and b["max_tokens"] == 1 for b in bodies)


def test_missing_logprobs_is_a_clear_error_naming_the_strategies(server):
    server.logprobs = False
    gen = gen_for(server)
    with pytest.raises(ScoringUnavailable) as exc:
        gen.score_options(["x"], [" yes", " no"])
    msg = str(exc.value)
    assert "rank and calibrated" in msg and "label-constrained evaluation" in msg
    assert "vote" in msg  # what still works
    with pytest.raises(ScoringUnavailable):  # remembered, no new request
        n = len(server.requests)
        gen.score_options(["y"], [" yes"])
    assert len(server.requests) == n


def test_count_tokens_uses_the_server_then_a_fallback(server):
    gen = gen_for(server)
    assert gen.count_tokens("one two three") == 3
    server.tokenize = False
    gen2 = gen_for(server, model="not-a-local-model-tiny")
    assert gen2.count_tokens("x" * 40) == 10  # characters / 4


# --------------------------------------------------------------------------- faults

def test_slow_answer_times_out_then_the_retry_succeeds(server):
    gen = gen_for(server, timeout=0.3)
    server.faults = ["slow"]
    assert gen.generate(["hi"], GREEDY)[0][0].startswith("echo:hi")
    assert gen.stats["retries"] == 1


def test_500_then_success_and_429_backs_off(server):
    gen = gen_for(server, backoff=0.05)
    server.faults = ["500", "429", "500"]
    t0 = time.monotonic()
    assert gen.generate(["hi"], GREEDY)[0][0].startswith("echo:hi")
    assert gen.stats["retries"] == 3 and time.monotonic() - t0 >= 0.05 + 0.1 + 0.2


def test_a_server_ignoring_max_tokens_is_cut_to_it():
    """Issue 38: the server's text is cut to what --max-new-tokens allows."""
    from selfguide.backends.openai import MAX_CHARS_PER_TOKEN

    srv = FakeServer(script=lambda prompt, body, i: "word " * 50_000)
    try:
        texts = gen_for(srv).generate(["hi"], GREEDY)[0]
        assert len(texts[0]) == GREEDY.max_new_tokens * MAX_CHARS_PER_TOKEN
    finally:
        srv.close()


def test_persistent_500_names_the_url_and_status(server):
    gen = gen_for(server, retries=1)
    server.faults = ["500"] * 5
    with pytest.raises(ServerError, match=r"/v1/completions answered HTTP 500: try again"):
        gen.generate(["hi"], GREEDY)


def test_malformed_json_is_a_clear_error(server):
    gen = gen_for(server)
    server.faults = ["badjson"]
    with pytest.raises(ServerError, match="malformed JSON"):
        gen.generate(["hi"], GREEDY)


def test_dropped_connection_is_retried(server):
    gen = gen_for(server)
    server.faults = ["drop"]
    assert gen.generate(["hi"], GREEDY)[0][0].startswith("echo:hi")
    assert gen.stats["retries"] == 1


def test_unreachable_server_is_a_clear_error():
    srv = FakeServer()
    url = srv.url
    srv.close()
    with pytest.raises(ServerError, match="Cannot get an answer from .*/v1/models"):
        OpenAIGenerator(url, model="tiny", retries=1, backoff=0.01, timeout=2)


def test_cancel_mid_run_stops_and_keeps_finished_prompts():
    srv = FakeServer(delay=0.05)
    try:
        gen = gen_for(srv, concurrency=2)
        done: dict[int, list[str]] = {}
        with pytest.raises(Cancelled, match="cancelled after"):
            gen.generate([f"p{i}" for i in range(40)], GREEDY,
                         on_result=lambda i, c: done.setdefault(i, c),
                         cancel=lambda: len(done) >= 4)
        assert 4 <= len(done) < 40
        time.sleep(0.2)
        sent = sum(1 for p, _ in srv.requests if "completions" in p)
        assert sent < 12  # it stopped sending
    finally:
        srv.close()


# --------------------------------------------------------------------------- model name

def test_model_name_mismatch_is_an_error_unless_confirmed(server):
    server.models = ["Qwen/Qwen2.5-7B-Instruct"]
    with pytest.raises(ModelMismatch, match="does not look like the model being finetuned"):
        gen_for(server, model="tiny")
    gen = gen_for(server, model="tiny", confirm_model=True)
    assert gen.server.confirmed and gen.server.served_model == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(ModelMismatch, match="does not serve 'other'"):
        gen_for(server, model="tiny", served_model="other")
    server.models = ["a", "b"]
    with pytest.raises(ConfigError, match="several models"):
        gen_for(server, model="a")
    server.models = ["/models/SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert gen_for(server, model="embedded").server.served_model.endswith(".gguf")


def test_model_config_validates_the_url():
    with pytest.raises(ConfigError, match="base_url.*http:// or https://"):
        ModelConfig(backend="openai")
    with pytest.raises(ConfigError, match="base_url"):
        ModelConfig(backend="openai", base_url="file:///etc/passwd")
    assert ModelConfig(backend="openai", base_url="https://h:1/v1").base_url == "https://h:1/v1"


# --------------------------------------------------------------------------- whole runs

def paraphrase_script(prompt: str, body: dict, i: int) -> str:
    if prompt.endswith("\n\nInput:"):
        r = random.Random(f"{prompt}|{body.get('seed')}|{i}")
        return "how do I " + " ".join(r.choice(NOUNS) for _ in range(5))
    q = prompt.rsplit("Input:", 1)[1].split("\n")[0].strip()
    return ["what is the way to " + q[9:], "what is the way to " + q[9:], q][i % 3]


def test_cli_generate_through_the_server(server, capsys):
    rc = cli.main(["generate", "--backend", "openai", "--base-url", server.url,
                   "--model", "tiny", "-p", "hello", "-n", "2", "--temperature", "0.7",
                   "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    rec = json.loads(out.out.strip().splitlines()[-1])
    assert rec["prompt"] == "hello" and len(rec["completions"]) == 2
    assert "tiny served at" in out.err


def test_cli_synthesize_through_the_server_records_it(workspace, tmp_path, tiny_model_dir,
                                                      capsys):
    srv = FakeServer(paraphrase_script, models=[tiny_model_dir.name])
    try:
        task = tmp_path / "para.json"
        task.write_text(json.dumps({
            "name": "para", "instruction": "Paraphrase the question.",
            "examples": [{"input": "how do I learn to cook rice",
                          "output": "what is the way to cook rice"},
                         {"input": "why is the sky blue during the day",
                          "output": "what makes the sky blue"}]}))
        rc = cli.main(["synthesize", str(task), "--run", "srv", "--rounds", "2",
                       "--prompts-per-round", "5", "--n-samples", "3",
                       "--model", str(tiny_model_dir), "--backend", "openai",
                       "--base-url", srv.url])
        out = capsys.readouterr()
        assert rc == 0, out.err
        run_dir = workspace / "runs" / "srv"
        recs = store.read_jsonl(run_dir / "dataset" / "train.jsonl")
        assert recs and all(r["completion"].startswith("what is the way to") for r in recs)
        cfg = store.read_json(run_dir / "config.json")
        assert cfg["model"]["backend"] == "openai" and cfg["model"]["base_url"] == srv.url
        assert cfg["server"] == {"base_url": srv.url, "served_model": tiny_model_dir.name,
                                 "reported_models": [tiny_model_dir.name], "confirmed": False}
        assert any("chat/completions" in p for p, _ in srv.requests)
    finally:
        srv.close()


def test_chat_scoring_renders_the_local_chat_template(server, tiny_model_dir):
    from selfguide.models.loading import load_tokenizer

    server.models = [tiny_model_dir.name]
    gen = OpenAIGenerator.from_config(ModelConfig(model=str(tiny_model_dir), backend="openai",
                                                  base_url=server.url), tokenizer=load_tokenizer)
    assert gen.score_options(["is it good?"], [" yes"], chat=True) == [[-0.1]]
    body = next(b for _, b in server.requests if b and b.get("echo"))
    assert body["prompt"] == "<|user|> is it good? <|assistant|> yes"


def test_labelling_without_logprobs_keeps_the_samples_for_a_vote(server):
    from selfguide.methods.selfguide import labelling
    from selfguide.task.spec import Demo, TaskSpec

    task = TaskSpec(name="sent", instruction="Is the review positive or negative?",
                    demos=(Demo("I loved it", "positive"), Demo("Boring plot", "negative")),
                    task_type="classification", labels=("positive", "negative"))
    server.logprobs = False
    recs = labelling.annotate(task, ["great film"], gen_for(server), "chat", GREEDY, 1)
    assert recs[0]["label_scores"] is None and len(recs[0]["samples"]) == 1


def test_switching_to_a_server_keeps_a_run_resumable():
    from selfguide.methods.selfguide.pipeline import _generation_key
    from selfguide.settings.fields import to_dict

    local = {"method": "selfguide", "model": to_dict(ModelConfig()), "synthesis": {}}
    served = {**local, "model": to_dict(ModelConfig(backend="openai",
                                                    base_url="http://127.0.0.1:1/v1"))}
    old = {**local, "model": {"model": "embedded", "precision": "auto", "device": "auto",
                              "trust_remote_code": False, "chat": True}}  # before issue 17
    assert _generation_key(local) == _generation_key(served) == _generation_key(old)
    other = {**local, "model": to_dict(ModelConfig(model="/models/x"))}
    assert _generation_key(other) != _generation_key(local)
