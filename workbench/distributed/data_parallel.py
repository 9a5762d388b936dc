"""Data parallelism for training (GRPO over several Macs): each rank takes its share of a step's
groups, counts and gradients are summed over the ranks, and every rank applies the same update.

Equal to one rank with the same global batch and seed (within float tolerance) when
- each group samples from its own seed (`group_seed`), not from one stream shared by the step, so
  a group's completions do not depend on which rank draws them;
- the loss normaliser uses the step's global counts (`all_sum_numbers`), so local losses add up to
  the global loss;
- the summed gradients (`sum_gradients`) go through the same clip and optimizer on every rank.
Rank 0 writes checkpoints and metrics. Uses MLX's own collectives (ring, MPI, JACCL).
"""

from __future__ import annotations


def my_share(n: int, rank: int, size: int) -> range:
    """This rank's contiguous share of n items; the first n % size ranks take one more."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def group_seed(seed: int, step: int, index: int) -> int:
    """The sampling seed of group `index` in `step`: the same on whichever rank draws it."""
    return (seed * 1_000_003 + step * 10_007 + index) % (2**31 - 1)


def all_sum_numbers(values: list[float], group) -> list[float]:
    """Counts and metric sums over all ranks (float64 on the CPU stream: exact for counts)."""
    import mlx.core as mx

    if group.size() == 1:
        return list(values)
    with mx.stream(mx.cpu):
        out = mx.distributed.all_sum(mx.array(values, dtype=mx.float32), group=group)
        return out.tolist()


def sum_gradients(grads, group):
    """The sum of every rank's gradients, in few large all-reduces (MLX's `average_gradients`, times size)."""
    import mlx.nn as nn
    from mlx.utils import tree_map

    if grads is None or group.size() == 1:
        return grads
    size = group.size()
    return tree_map(lambda g: g * size, nn.average_gradients(grads, group=group))
