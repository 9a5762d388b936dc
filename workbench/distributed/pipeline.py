"""Pipeline parallelism for Qwen2/Llama-style models, without forking mlx-lm's model files.

Each rank keeps a contiguous slice of `model.model.layers` (rank 0 the first layers). The first
layer of a slice receives the hidden state from the previous rank, the last sends it on; after
the last rank, one all_gather gives every rank the final hidden state, so norm, head and
sampling run everywhere and all ranks pick the same token. Per token and hop that is one
hidden state (hidden_size numbers) on the wire, instead of tensor parallelism's two
all-reduces per layer.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


class PipelineEnds(nn.Module):
    """A layer at the start and/or end of this rank's slice."""

    def __init__(self, layer, group, receive_from: int | None = None):
        super().__init__()
        self.layer = layer
        self.group = group
        self.receive_from = receive_from
        self.send_to: int | None = None
        self.gather = False
        self.use_sliding = getattr(layer, "use_sliding", False)  # llama picks its mask by this

    def __call__(self, x, *args, **kwargs):
        if self.receive_from is not None:
            x = mx.distributed.recv_like(x, self.receive_from, group=self.group)
        out = self.layer(x, *args, **kwargs)
        if self.send_to is not None:
            out = mx.distributed.send(out, self.send_to, group=self.group)
            # Prompt chunks evaluate only the cache: keep the send in its graph or the next rank waits forever.
            cache = kwargs.get("cache", args[1] if len(args) > 1 else None)
            if getattr(cache, "keys", None) is not None:
                cache.keys = mx.depends(cache.keys, out)
        if self.gather:
            # Every rank gets the last rank's output (all_gather concatenates in rank order).
            out = mx.distributed.all_gather(out, group=self.group)[-out.shape[0]:]
        return out


def layer_ranges(split: list[int]) -> list[tuple[int, int]]:
    """[(start, end)] per rank for layer counts `split` (rank 0 first)."""
    ranges, start = [], 0
    for n in split:
        ranges.append((start, start + n))
        start += n
    return ranges


def pipeline(model, group, split: list[int]) -> tuple[int, int]:
    """Keep this rank's slice of the layers, wired to its neighbours; returns (start, end)."""
    inner = model.model
    layers = inner.layers
    if len(split) != group.size() or sum(split) != len(layers) or min(split) < 1:
        raise ValueError(f"split {split} must give each of {group.size()} ranks at least one of {len(layers)} layers")
    rank, size = group.rank(), group.size()
    start, end = layer_ranges(split)[rank]
    local = list(layers[start:end])
    local[0] = PipelineEnds(local[0], group, receive_from=rank - 1 if rank > 0 else None)
    if len(local) > 1:
        local[-1] = PipelineEnds(local[-1], group)
    local[-1].send_to = rank + 1 if rank < size - 1 else None
    local[-1].gather = size > 1
    inner.layers = local
    if hasattr(inner, "fa_idx"):  # llama: cache indices of the first full / sliding attention layer
        sliding = [layer.use_sliding for layer in local]
        inner.fa_idx = sliding.index(False) if False in sliding else 0
        inner.swa_idx = sliding.index(True) if True in sliding else None
    return start, end
