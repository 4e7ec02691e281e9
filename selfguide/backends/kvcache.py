"""The KV cache of the own decode loop: preallocated room, rows that can be added or dropped.

What it does: :func:`new_cache` gives a transformers ``DynamicCache`` whose full-attention
layers write into buffers with spare room in both the length and the row dimension, so a
decode step writes one position instead of concatenating the whole cache (``torch.cat`` was
18% of a decode's time), and a node of samples that splits (see
:func:`selfguide.backends.decoding.decode`) copies only its own row (:func:`add_rows`)
instead of gathering every row of the batch (a full gather per split was a quarter of a
labelling run). :func:`keep_rows` drops rows (one gather of the rows kept). For continuous
refill (:func:`selfguide.backends.decoding.decode` with a ``feed``), :func:`append_rows`
adds the rows of a separately prefilled cache, right-aligned with holes before them, and
:func:`drop_columns` removes leading hole columns every row has.

What it does not do: attend. On CPU with ``sdpa`` the shared prefix is held once per layer
by :mod:`selfguide.backends.cascade` (which adds it to these layers); otherwise each row
holds its own copy of the prefix keys/values, the layout the model's attention expects. Caches with sliding-window
or other non-plain layers stay plain ``DynamicCache`` objects, for which the same two
functions fall back to ``batch_select_indices``. torch/transformers are imported inside
functions.
"""

from __future__ import annotations

from typing import Any


def new_cache(config: Any, room: int, rows: int = 0, plain: bool = False) -> Any:
    """A ``DynamicCache`` for ``config`` with ``room`` spare positions and capacity for
    ``rows`` rows (plain layers only; others are left as transformers builds them, unless
    ``plain``: every layer whole, for sliding windows a call never reaches)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    if plain or all(type(layer) is DynamicLayer for layer in cache.layers):
        cls = _room_layer_class()
        cache.layers = [cls(room, rows) for _ in cache.layers]
    return cache


def add_rows(cache: Any, parents: list[int]) -> None:
    """Append a copy of row ``parents[j]`` for every j (after the existing rows)."""
    import torch

    if not parents:
        return
    if all(hasattr(layer, "add_rows") for layer in cache.layers):
        idx = torch.tensor(parents, device=_device(cache))
        for layer in cache.layers:
            layer.add_rows(idx)
        return
    n = cache.layers[0].keys.shape[0]
    keep_rows(cache, list(range(n)) + list(parents))


def keep_rows(cache: Any, rows: list[int]) -> None:
    """Keep only ``rows`` (in this order; a row may repeat)."""
    import torch

    cache.batch_select_indices(torch.tensor(rows, device=_device(cache)))


def can_refill(cache: Any) -> bool:
    """Whether :func:`append_rows` and :func:`drop_columns` work on ``cache`` (every layer
    one of :func:`new_cache`'s buffered layers)."""
    return bool(cache.layers) and all(hasattr(layer, "append_rows") for layer in cache.layers)


def append_rows(cache: Any, other: Any, lead: int) -> None:
    """Append the rows of ``other`` (a cache of the same model, :func:`can_refill`, not
    longer than ``cache``): each new row keeps ``other``'s first ``lead`` positions at its
    start (a prefix held in every row) and the rest at its end; the positions between are
    zeros (holes the mask hides: zeros, never uninitialised memory, so a hidden position
    cannot inject a NaN)."""
    for layer, src in zip(cache.layers, other.layers):
        layer.append_rows(src.keys, src.values, lead)


def drop_columns(cache: Any, start: int, count: int) -> None:
    """Remove positions ``[start, start + count)`` of every row (holes no row needs)."""
    if count > 0:
        for layer in cache.layers:
            layer.drop_columns(start, count)


def _device(cache: Any) -> Any:
    keys = getattr(cache.layers[0], "keys", None)
    return keys.device if keys is not None else "cpu"


_ROOM_LAYER: type | None = None


def _room_layer_class() -> type:
    """``RoomLayer``: a ``DynamicLayer`` over buffers with spare room (positions and rows);
    ``keys``/``values`` are views of the filled part. Built on first use (transformers is
    imported lazily); its methods are the ``_room_*`` functions below."""
    global _ROOM_LAYER
    if _ROOM_LAYER is None:
        from transformers.cache_utils import DynamicLayer

        _ROOM_LAYER = type("RoomLayer", (DynamicLayer,), {
            "__init__": _room_init, "update": _room_update, "_resize": _room_resize,
            "_view": _room_view, "add_rows": _room_add_rows,
            "batch_repeat_interleave": _room_repeat_interleave,
            "batch_select_indices": _room_select_indices,
            "append_rows": _room_append_rows, "drop_columns": _room_drop_columns,
        })
    return _ROOM_LAYER


def _room_init(self: Any, room: int, rows: int = 0) -> None:
    from transformers.cache_utils import DynamicLayer

    DynamicLayer.__init__(self)
    self.room, self.n, self.rows, self.row_cap = max(1, room), 0, 0, rows


def _room_update(self: Any, key_states: Any, value_states: Any, *args: Any, **kwargs: Any):
    new = key_states.shape[-2]
    if not self.is_initialized:
        self.lazy_initialization(key_states, value_states)
        self.bk = self.bv = None
        self.rows = key_states.shape[0]
    if self.bk is None or self.n + new > self.bk.shape[-2]:
        self._resize(self.n + new + self.room, self.rows, key_states, value_states)
    self.bk[:self.rows, :, self.n:self.n + new] = key_states
    self.bv[:self.rows, :, self.n:self.n + new] = value_states
    self.n += new
    self._view()
    return self.keys, self.values


def _room_resize(self: Any, length: int, rows: int, k: Any, v: Any) -> None:
    _, h, _, d = k.shape
    cap = max(rows, self.row_cap)
    bk, bv = k.new_empty((cap, h, length, d)), v.new_empty((cap, h, length, v.shape[-1]))
    if self.bk is not None and self.n:
        bk[:self.rows, :, :self.n] = self.keys
        bv[:self.rows, :, :self.n] = self.values
    self.bk, self.bv = bk, bv


def _room_view(self: Any) -> None:
    self.keys = self.bk[:self.rows, :, :self.n]
    self.values = self.bv[:self.rows, :, :self.n]


def _room_add_rows(self: Any, parents: Any) -> None:
    m = int(parents.shape[0])
    if not self.n or not m:
        return
    if self.rows + m > self.bk.shape[0]:
        self.row_cap = max(self.rows + m, 2 * self.bk.shape[0])
        self._resize(self.bk.shape[-2], self.rows, self.keys, self.values)
    self.bk[self.rows:self.rows + m, :, :self.n] = self.bk[parents, :, :self.n]
    self.bv[self.rows:self.rows + m, :, :self.n] = self.bv[parents, :, :self.n]
    self.rows += m
    self._view()


def _room_repeat_interleave(self: Any, repeats: int) -> None:
    if self.n:
        self.bk = self.bk[:self.rows].repeat_interleave(repeats, dim=0)
        self.bv = self.bv[:self.rows].repeat_interleave(repeats, dim=0)
        self.rows *= repeats
        self._view()


def _room_select_indices(self: Any, indices: Any) -> None:
    if self.n:
        self.bk, self.bv = self.bk[indices], self.bv[indices]
        self.rows = int(indices.shape[0])
        self._view()


def _room_append_rows(self: Any, keys: Any, values: Any, lead: int) -> None:
    m, tail = int(keys.shape[0]), int(keys.shape[-2]) - lead
    if not m:
        return
    if tail > self.n - lead or tail < 0:
        raise ValueError(f"rows of {lead + tail} positions do not fit a cache of {self.n}")
    if self.rows + m > self.bk.shape[0]:
        self.row_cap = max(self.rows + m, 2 * self.bk.shape[0])
        self._resize(self.bk.shape[-2], self.rows, self.keys, self.values)
    for buf, src in ((self.bk, keys), (self.bv, values)):
        new = buf[self.rows:self.rows + m, :, :self.n]
        new[:, :, lead:self.n - tail] = 0
        new[:, :, :lead] = src[:, :, :lead]
        new[:, :, self.n - tail:] = src[:, :, lead:]
    self.rows += m
    self._view()


def _room_drop_columns(self: Any, start: int, count: int) -> None:
    end = self.n - count
    for buf in (self.bk, self.bv):
        buf[:self.rows, :, start:end] = buf[:self.rows, :, start + count:self.n].clone()
    self.n = end
    self._view()
