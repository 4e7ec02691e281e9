"""The OpenAI-compatible HTTP backend: generation and label scoring through a server.

What it does: sends prompts to a server that speaks the OpenAI API (vLLM's ``vllm serve``,
llama.cpp's ``llama-server``, llama-cpp-python's server, Ollama's ``/v1``) and serving THE
SAME model the run finetunes. ``chat=True`` posts to ``/chat/completions`` (the server
applies the model's chat template), ``chat=False`` to ``/completions``. Requests run
concurrently on a bounded thread pool (``concurrency``); ``on_result`` fires as each prompt
finishes, ``progress`` after each, and ``cancel`` is checked before every request (and
between retries), raising ``Cancelled``. ``n`` samples go in one request where the server
honours ``n``; missing samples are asked for again (llama.cpp returns one). 429, 5xx,
time-outs and dropped connections are retried with exponential backoff; malformed answers
are a clear ``ServerError``.

:meth:`score_options` needs the completions endpoint's ``echo`` + ``logprobs`` (vLLM has
them; llama.cpp's ``llama-server`` and Ollama do not; llama-cpp-python 0.3.36 echoes them
shifted by one token, which cannot be detected here: do not rank with it): without them it
raises :class:`ScoringUnavailable`, naming the strategies that then cannot run (rank and
calibrated labelling, label-constrained evaluation). With ``chat=True`` the prompt is
rendered with the model's chat template from the local checkpoint (``ModelConfig.model``).
:meth:`count_tokens` asks the server's ``/tokenize`` (llama.cpp, vLLM) or ``/extras/tokenize``
(llama-cpp-python); failing those, the local tokenizer; failing that, ``ceil(chars / 4)``.

On construction it reads ``/models`` and resolves the served model name; a name that does
not look like the model being finetuned is :class:`ModelMismatch` unless ``confirm_model``.
:attr:`OpenAIGenerator.server` (:class:`ServerInfo`) is what a run records.

Stdlib only (urllib, concurrent.futures); importing this module is cheap.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from selfguide.backends.openai_client import (
    API_KEY_ENV,
    JSONClient,
    ServerInfo,
    looks_like,
    parse_choices,
    resolve_served_model,
)
from selfguide.errors import Cancelled, ConfigError, ScoringUnavailable, ServerError
from selfguide.settings.fields import ModelConfig, SamplingConfig, from_dict

# The callback types of ``selfguide.backends`` (spelled out: this module imports no backend)
CancelFlag = Callable[[], bool]
ResultCallback = Callable[[int, list[str]], None]
ProgressCallback = Callable[[int, int, int], None]

log = logging.getLogger(__name__)

# A server that ignores ``max_tokens`` cannot hand back more text than this many characters
# per token asked for (no common vocabulary has longer tokens than a few dozen characters;
# counting exactly would need the model's tokenizer for every answer).
MAX_CHARS_PER_TOKEN = 32
NEEDS_LOGPROBS = ("rank and calibrated labelling (label_strategy rank/calibrated and the "
                  "automatic choice between them), and label-constrained evaluation")


class OpenAIGenerator:
    """Generation + scoring through an OpenAI-compatible server (see module docstring).

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        served_model: the model name to ask the server for ('' = the only one it serves).
        model: the ``ModelConfig.model`` being finetuned (name check, local chat template).
        confirm_model: accept a served name that does not look like ``model``.
        concurrency: requests in flight at once. timeout: seconds per request.
        tokenizer: a callable returning the model's tokenizer (or None), called once when
            chat scoring or a local token count needs it.
        retries: extra attempts after a 429/5xx/time-out/dropped connection.
        backoff: first retry delay in seconds, doubled each attempt.
    """

    name = "openai"

    def __init__(self, base_url: str, *, served_model: str = "", model: str = "embedded",
                 confirm_model: bool = False, concurrency: int = 8, timeout: float = 300.0,
                 retries: int = 4, backoff: float = 0.5, api_key: str | None = None,
                 tokenizer: Callable[[], Any] | None = None):
        self.base_url = base_url.rstrip("/")
        self.model_ref = model
        self._tokenizer_loader = tokenizer
        self.concurrency = int(concurrency)
        self.http = JSONClient(self.base_url, timeout=timeout, retries=retries,
                               backoff=backoff, api_key=api_key if api_key is not None
                               else os.environ.get(API_KEY_ENV))
        self.stats: dict[str, Any] = {}
        self._scoring: bool | None = None  # None = not probed yet
        self._tokenize: str | None = None   # the count_tokens method that worked
        self._tokenize_path: str | None = None
        self._tok: Any = None
        self._lock = threading.Lock()
        reported = self.list_models()
        self.server = ServerInfo(self.base_url, resolve_served_model(
            served_model, model, reported, confirm_model), reported,
            confirmed=bool(confirm_model) and not looks_like(served_model or reported[0], model))
        self.info = self.server  # what ``selfguide generate`` prints (``summary()``)

    @classmethod
    def from_config(cls, config: ModelConfig | None = None, *,
                    tokenizer: Callable[[ModelConfig], Any] | None = None,
                    **kw: Any) -> OpenAIGenerator:
        """From a ``ModelConfig`` (or its fields as ``kw``; ``backend`` is taken as openai).
        ``tokenizer(cfg)`` loads the model's tokenizer when first needed (the registry and
        ``models.load_generator`` pass ``models.load_tokenizer``): chat-prompt scoring and
        exact token counts without a server ``/tokenize``."""
        kw.pop("batch_size", None)
        kw.pop("roots", None)
        extra = {k: kw.pop(k) for k in ("retries", "backoff", "api_key") if k in kw}
        cfg = config or from_dict(ModelConfig, {"backend": "openai", **kw})
        load = (lambda: tokenizer(cfg)) if tokenizer is not None else None
        return cls(cfg.base_url, served_model=cfg.served_model, model=cfg.model,
                   confirm_model=cfg.confirm_model, concurrency=cfg.concurrency,
                   timeout=cfg.request_timeout, tokenizer=load, **extra)

    def list_models(self) -> list[str]:
        """Model ids the server reports at ``/models``."""
        data = self.http.request("/models")
        try:
            ids = [str(m["id"]) for m in data["data"]]
        except (KeyError, TypeError) as exc:
            raise ServerError(f"{self.base_url}/models answered without a model list: "
                              f"{str(data)[:120]}") from exc
        if not ids:
            raise ServerError(f"{self.base_url}/models lists no model.",
                              hint="Start the server with the model loaded.")
        return ids

    # ------------------------------------------------------------------ generate
    def generate(self, prompts: Sequence[str], sampling: SamplingConfig | None = None, n: int = 1,
                 *, chat: bool = False, on_result: ResultCallback | None = None,
                 progress: ProgressCallback | None = None,
                 cancel: CancelFlag | None = None) -> list[list[str]]:
        """``n`` completions per prompt, in the order of ``prompts`` (greedy: one request,
        ``n`` copies). Completed prompts were already delivered when ``Cancelled`` is raised."""
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"Invalid value for 'n': {n!r} (must be an integer >= 1).")
        sampling = sampling or SamplingConfig()
        prompts = list(prompts)
        decode_n = 1 if sampling.greedy else n
        t0 = time.monotonic()
        self.stats = {"requests": 0, "retries": 0, "generated_tokens": 0, "seconds": 0.0}
        retried = self.http.retried

        def one(i: int) -> tuple[list[str], int]:
            return self._complete(prompts[i], sampling, decode_n, chat, i, cancel)

        results: list[list[str]] = [[] for _ in prompts]
        tokens = 0

        def deliver(i: int, value: tuple[list[str], int]) -> None:
            nonlocal tokens
            comps = value[0] * (n if decode_n < n else 1)
            results[i] = comps
            tokens += value[1]
            if on_result is not None:
                on_result(i, list(comps))

        done = self._pool_map(one, len(prompts), deliver, cancel,
                              lambda d: progress and progress(d, len(prompts), tokens))
        self.stats.update(generated_tokens=tokens, seconds=round(time.monotonic() - t0, 4),
                          prompts=done, retries=self.http.retried - retried)
        return results

    def _pool_map(self, fn: Any, count: int, deliver: Any, cancel: CancelFlag | None,
                  after: Any) -> int:
        """Run ``fn(i)`` for ``i < count`` with at most ``concurrency`` in flight; deliver
        results in completion order on this thread; raise ``Cancelled`` when asked."""
        pool = cf.ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, count or 1)),
                                     thread_name_prefix="selfguide-openai")
        pending: dict[cf.Future, int] = {}
        nxt = done = 0
        try:
            while done < count:
                while nxt < count and len(pending) < self.concurrency:
                    if cancel is not None and cancel():
                        raise Cancelled(f"Generation cancelled after {done} of {count} prompts.")
                    pending[pool.submit(fn, nxt)] = nxt
                    nxt += 1
                finished, _ = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    i = pending.pop(fut)
                    try:
                        value = fut.result()
                    except Cancelled:
                        raise Cancelled(f"Generation cancelled after {done} of {count} "
                                        "prompts.") from None
                    deliver(i, value)
                    done += 1
                    after(done)
                if not finished and cancel is not None and cancel():
                    raise Cancelled(f"Generation cancelled after {done} of {count} prompts.")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return done

    def _complete(self, prompt: str, sampling: SamplingConfig, n: int, chat: bool, index: int,
                  cancel: CancelFlag | None) -> tuple[list[str], int]:
        """``n`` completions of one prompt (more requests if the server returns fewer)."""
        texts: list[str] = []
        tokens = 0
        for extra in range(n):  # at most n requests: each returns >= 1 choice
            body = self._body(sampling, n - len(texts), seed=sampling.seed + index * 1009 + extra)
            if chat:
                body["messages"] = [{"role": "user", "content": prompt}]
            else:
                body["prompt"] = prompt
            data = self.http.request("/chat/completions" if chat else "/completions", body,
                                 cancel=cancel)
            got, used = parse_choices(data, chat, self.base_url)
            with self._lock:
                self.stats["requests"] = self.stats.get("requests", 0) + 1
            cap = sampling.max_new_tokens * MAX_CHARS_PER_TOKEN  # a server ignoring max_tokens
            texts += [_cut(t, sampling.stop)[:cap] for t in got]
            tokens += used if used is not None else sum(len(t) // 4 + 1 for t in got)
            if len(texts) >= n:
                break
        return texts[:n], tokens

    def _body(self, sampling: SamplingConfig, n: int, *, seed: int) -> dict:
        body: dict[str, Any] = {"model": self.server.served_model, "n": n,
                                "max_tokens": sampling.max_new_tokens,
                                "temperature": sampling.temperature, "top_p": sampling.top_p,
                                "seed": seed % (2**31 - 1), "stream": False}
        if sampling.stop:
            body["stop"] = list(sampling.stop)[:4]  # the OpenAI API takes at most 4
        if sampling.top_k:
            body["top_k"] = sampling.top_k  # vLLM, llama.cpp and Ollama accept it
        return body

    # ------------------------------------------------------------------ scoring
    def score_options(self, prompts: Sequence[str], options: Sequence[str], *,
                      chat: bool = False) -> list[list[float]]:
        """Total log-probability of each option after each prompt (completions ``echo``)."""
        if self._scoring is False:
            raise self._unavailable("it gave no prompt log-probabilities earlier")
        rendered = [self._render(p, chat) for p in prompts]
        options = list(options)
        out = [[0.0] * len(options) for _ in rendered]
        pairs = [(i, j) for i in range(len(rendered)) for j in range(len(options))]
        if pairs and self._scoring is None:  # probe once, serially, for a clear error
            i, j = pairs.pop(0)
            out[i][j] = self._score_one(rendered[i], options[j])
            self._scoring = True

        def one(k: int) -> float:
            i, j = pairs[k]
            return self._score_one(rendered[i], options[j])

        def deliver(k: int, value: float) -> None:
            out[pairs[k][0]][pairs[k][1]] = value

        self._pool_map(one, len(pairs), deliver, None, lambda d: None)
        return out

    def _score_one(self, prompt: str, option: str) -> float:
        body = {"model": self.server.served_model, "prompt": prompt + option, "echo": True,
                "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        try:
            data = self.http.request("/completions", body)
        except ServerError as exc:
            if re.search(r"HTTP (400|404|422|500|501)", str(exc)):  # after its retries
                self._scoring = False
                raise self._unavailable(str(exc).splitlines()[0]) from exc
            raise
        value = _option_logprob(data, option)
        if value is None:
            self._scoring = False
            raise self._unavailable("its answer has no prompt log-probabilities")
        return value

    def _unavailable(self, why: str) -> ScoringUnavailable:
        return ScoringUnavailable(
            f"The server at {self.base_url} cannot score labels ({why}): {NEEDS_LOGPROBS} "
            "are unavailable with it.",
            hint="Use label_strategy vote or target and free-text evaluation, serve the model "
                 "with vLLM (it echoes prompt logprobs), or use --backend hf.")

    def _render(self, text: str, chat: bool) -> str:
        if not chat:
            return text
        tok = self._local_tokenizer()
        if tok is None or not getattr(tok, "chat_template", None):
            raise ScoringUnavailable(
                f"Scoring chat prompts through a server needs the chat template of "
                f"{self.model_ref!r} locally, and it has none here.",
                hint="Set --model to the local checkpoint the server serves, or --chat false.")
        # == backends.hf.render_prompt(tok, text, chat=True): THE prompt format
        return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                       add_generation_prompt=True)

    def _local_tokenizer(self) -> Any:
        """The model's tokenizer from the ``tokenizer`` loader (once), or None."""
        if self._tok is None:
            self._tok = False
            try:
                self._tok = (self._tokenizer_loader() if self._tokenizer_loader else None) \
                    or False
            except Exception as exc:  # noqa: BLE001 - only a fallback; the reason is logged
                log.info("no local tokenizer for %r: %s", self.model_ref, exc)
        return self._tok or None

    # ------------------------------------------------------------------ tokens
    def count_tokens(self, text: str) -> int:
        """The server's tokenizer, else the local one, else ``ceil(len(text) / 4)``."""
        if self._tokenize in (None, "server"):
            n = self._server_count(text)
            if n is not None:
                self._tokenize = "server"
                return n
            self._tokenize = "local"
        if self._tokenize == "local":
            tok = self._local_tokenizer()
            if tok is not None:
                return len(tok(text, add_special_tokens=False)["input_ids"])
            log.warning("counting tokens as characters / 4: the server at %s has no "
                        "/tokenize and %r has no local tokenizer", self.base_url,
                        self.model_ref)
            self._tokenize = "chars"
        return math.ceil(len(text) / 4)

    def _server_count(self, text: str) -> int | None:
        m = self.server.served_model
        routes = (("/tokenize", {"model": m, "prompt": text, "content": text,
                                 "add_special_tokens": False}),
                  ("/extras/tokenize", {"model": m, "input": text}))
        for path, body in routes:
            if self._tokenize_path not in (None, path):
                continue
            try:
                data = self.http.request(path, body, root=True, retry=False)
            except ServerError:
                continue
            self._tokenize_path = path  # the one that answered: ask it alone from now on
            if isinstance(data, dict) and isinstance(data.get("tokens"), list):
                return len(data["tokens"])
            if isinstance(data, dict) and isinstance(data.get("count"), int):
                return data["count"]
        return None


# --------------------------------------------------------------------------- helpers

def _option_logprob(data: Any, option: str) -> float | None:
    """Sum of the echoed log-probabilities of the tokens that spell ``option`` at the end of
    the echoed prompt. Found by the token strings, from the end (the generated token may
    follow or not), not by ``text_offset``: llama-cpp-python echoes special tokens as empty
    strings, so offsets do not match the prompt text. None: no usable logprobs."""
    try:
        lp = data["choices"][0]["logprobs"]
        toks, lps = list(lp["tokens"]), list(lp["token_logprobs"])
    except (KeyError, IndexError, TypeError):
        return None
    if not toks or len(toks) != len(lps) or not all(isinstance(t, str) for t in toks):
        return None
    want = option.strip()
    for end in (len(toks) - 1, len(toks)):  # generated token after the prompt, or not
        text = "".join(toks[:end])
        if not want or not text.rstrip().endswith(want):
            continue
        k, width = end, 0
        while k > 0 and width < len(want):
            k -= 1
            width += len(toks[k].strip()) if width == 0 else len(toks[k])
        picked = lps[k:end]
        if picked and all(isinstance(v, int | float) for v in picked):
            return float(sum(picked))
    return None


def _cut(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest stop string (as ``backends.hf.cut_at_stop``)."""
    cut = len(text)
    for s in stop:
        i = text.find(s) if s else -1
        if 0 <= i < cut:
            cut = i
    return text[:cut]


