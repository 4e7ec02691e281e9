"""Fast ROUGE-L (F-measure), equal to ``rouge_score`` to the last bit.

What it does: tokenizes exactly like ``rouge_score.tokenize.tokenize`` (lower-case, every
run of characters outside ``[a-z0-9]`` is a separator, optional Porter stemming of tokens
longer than 3 characters; stemming is off by default as in the Self-Instruct code,
https://github.com/yizhongw/self-instruct), caches the tokens per string, maps every
distinct token to one Unicode code point and computes longest common subsequences with
``rapidfuzz.distance.LCSseq`` (bit-parallel C++), all pairs at once with
``rapidfuzz.process.cdist``. The F-measure is computed with the same floating-point
operations as ``rouge_score.scoring.fmeasure`` so the results are identical, not just close.

``rouge_l(a, b)`` equals ``RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure``; the
F-measure is symmetric, so the argument order does not matter.

What it does not do: ROUGE-N, ROUGE-Lsum (sentence splitting) or multi-reference scoring.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Sequence

__all__ = ["tokenize", "rouge_l", "RougeIndex", "max_scores", "lcs_f1"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID = re.compile(r"^[a-z0-9]+$")
_CHUNK = 512  # candidate rows per cdist call: bounds memory to _CHUNK x len(pool) ints


@functools.cache
def _stemmer():
    from nltk.stem import porter  # rouge_score's own dependency

    return porter.PorterStemmer()


@functools.lru_cache(maxsize=1 << 17)
def tokenize(text: str, stem: bool = False) -> tuple[str, ...]:
    """Tokens of ``text`` exactly as ``rouge_score``'s default tokenizer produces them.

    Args:
        text: Any string.
        stem: Apply the Porter stemmer to tokens longer than 3 characters (rouge_score's
            ``use_stemmer=True``).
    """
    text = _NON_ALNUM.sub(" ", text.lower())
    tokens = _SPACES.split(text)
    if stem:
        st = _stemmer()
        tokens = [st.stem(t) if len(t) > 3 else t for t in tokens]
    return tuple(t for t in tokens if _VALID.match(t))


# Token -> one code point, shared by every string so encoded strings are comparable.
_VOCAB: dict[str, str] = {}
_VOCAB_LOCK = threading.Lock()


def _code_point(i: int) -> str:
    # Skip the surrogate block so every encoded string is valid Unicode.
    return chr(i + 0x800 if i >= 0xD800 else i)


@functools.lru_cache(maxsize=1 << 17)
def _encode(text: str, stem: bool = False) -> str:
    """``text`` as a string with one character per token (see ``_VOCAB``)."""
    out = []
    for tok in tokenize(text, stem):
        ch = _VOCAB.get(tok)
        if ch is None:
            with _VOCAB_LOCK:
                ch = _VOCAB.get(tok)
                if ch is None:
                    ch = _VOCAB[tok] = _code_point(len(_VOCAB) + 1)
        out.append(ch)
    return "".join(out)


def lcs_f1(lcs: int, len_a: int, len_b: int) -> float:
    """ROUGE-L F-measure from an LCS length and the two token counts (rouge_score's order
    of operations: precision, recall, then ``2 * p * r / (p + r)``)."""
    if len_a == 0 or len_b == 0 or lcs == 0:
        return 0.0
    precision = lcs / len_b
    recall = lcs / len_a
    return 2 * precision * recall / (precision + recall)


def rouge_l(a: str, b: str, *, stem: bool = False) -> float:
    """ROUGE-L F-measure between two strings (symmetric)."""
    from rapidfuzz.distance import LCSseq

    ea, eb = _encode(a, stem), _encode(b, stem)
    if not ea or not eb:
        return 0.0
    return lcs_f1(LCSseq.similarity(ea, eb), len(ea), len(eb))


def _f_matrix(cands: list[str], pool: list[str], pool_len, workers: int):
    """F-measure matrix (len(cands) x len(pool)) for encoded strings."""
    import numpy as np
    from rapidfuzz import process
    from rapidfuzz.distance import LCSseq

    lcs = process.cdist(cands, pool, scorer=LCSseq.similarity, dtype=np.int32,
                        workers=workers).astype(np.float64)
    cand_len = np.array([len(c) for c in cands], dtype=np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / pool_len[None, :]
        recall = lcs / cand_len
        f = 2 * precision * recall / (precision + recall)
    return np.where(lcs > 0, f, 0.0)


def max_scores(candidates: Sequence[str], pool: Sequence[str], *, stem: bool = False,
               workers: int = -1) -> list[tuple[float, int]]:
    """For each candidate, the highest ROUGE-L against ``pool`` and its index in ``pool``.

    Ties go to the lowest index; an empty pool gives ``(0.0, -1)``. ``workers=-1`` uses
    every core for the all-pairs LCS.
    """
    import numpy as np

    if not pool:
        return [(0.0, -1)] * len(candidates)
    enc_pool = [_encode(p, stem) for p in pool]
    pool_len = np.array([len(p) for p in enc_pool], dtype=np.float64)
    out: list[tuple[float, int]] = []
    for start in range(0, len(candidates), _CHUNK):
        enc = [_encode(c, stem) for c in candidates[start:start + _CHUNK]]
        f = _f_matrix(enc, enc_pool, pool_len, workers)
        idx = f.argmax(axis=1)
        out.extend((float(f[i, j]), int(j)) for i, j in enumerate(idx))
    return out


class RougeIndex:
    """A growing pool of texts answering "how close is the nearest one?" by ROUGE-L.

    >>> ix = RougeIndex(["Write a poem about cats."])
    >>> score, index = ix.nearest("Write a poem about dogs.")
    >>> round(score, 6), index
    (0.8, 0)
    """

    def __init__(self, texts: Iterable[str] = (), *, stem: bool = False, workers: int = 1):
        self.stem = stem
        self.workers = workers
        self.texts: list[str] = []
        self._enc: list[str] = []
        self._len_cache = None
        for t in texts:
            self.add(t)

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> int:
        """Add ``text``; returns its index."""
        self.texts.append(text)
        self._enc.append(_encode(text, self.stem))
        self._len_cache = None
        return len(self.texts) - 1

    def _lengths(self):
        import numpy as np

        if self._len_cache is None or len(self._len_cache) != len(self._enc):
            self._len_cache = np.array([len(e) for e in self._enc], dtype=np.float64)
        return self._len_cache

    def scores(self, text: str):
        """ROUGE-L of ``text`` against every pool entry (a numpy array)."""
        import numpy as np

        if not self._enc:
            return np.zeros(0)
        return _f_matrix([_encode(text, self.stem)], self._enc, self._lengths(),
                         self.workers)[0]

    def nearest(self, text: str) -> tuple[float, int]:
        """``(max ROUGE-L, index)`` of the closest pool entry; ``(0.0, -1)`` if empty."""
        if not self._enc:
            return 0.0, -1
        s = self.scores(text)
        j = int(s.argmax())
        return float(s[j]), j
