"""Masks over a grid of tokens ``(Tp, S)`` (time patches x spatial patches) for masked autoencoders (UniST).

A :class:`MaskDraw` for a batch holds:

* ``drop [B, L]`` (L = Tp * S, time-major): tokens removed from the encoder's input and replaced by the mask
  token in the decoder. Every sample of a batch drops the same number of tokens, so the visible tokens stack
  into one tensor.
* ``hide [B, L, C]``: the (token, attribute) pairs whose values the model may not see and must reconstruct.
  A dropped token hides all its attributes; ``attribute`` hides one attribute of tokens that stay visible
  (their other attributes are still seen).

Strategies (ratio r, default 0.5):

``random``    r*L tokens chosen uniformly per sample.
``tube``      r*S spatial patches hidden at every time patch (the same cells throughout).
``block``     r*S spatial patches that lie together, at every time patch: on a grid a contiguous run in
              row-major order (a band of the map; the released code uses a quarter or a half of the spatial
              index range), from a random start per sample; on a region graph (``edges``), whose unit
              indices carry no geometry, the units nearest in graph hops to a random seed unit (ties broken
              at random).
``frame``     r*Tp whole time patches chosen per sample.
``temporal``  the last r*Tp time patches (forecasting).
``attribute`` for multi-attribute data: one attribute per sample hidden at r*L token positions; no token is
              dropped.

A draw may cover the history's time patches only (``draw_for_batch(..., history_frames=Th)``): the future
tokens are then dropped whole and never rebuilt, so masked reconstruction of the inputs reads the same token
layout as forecasting (test-time adaptation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from urbanst.contract import to_scaled
from urbanst.errors import UrbanstError


@dataclass
class MaskDraw:
    strategy: str
    drop: torch.Tensor  # [B, L] bool, True = removed from the encoder input
    hide: torch.Tensor  # [B, L, C] bool, True = value hidden and to be reconstructed

    def visible(self, width: int) -> torch.Tensor:
        """``[B, kept, width]``: the positions of the kept tokens, in place order, as a gather index."""
        kept = int((~self.drop[0]).sum())
        order = torch.argsort(self.drop.to(torch.int8), dim=1, stable=True)[:, :kept]
        return order[:, :, None].expand(-1, kept, width)

    def then_dropped(self, tokens: int) -> MaskDraw:
        """This draw followed by ``tokens`` more tokens, each dropped and hidden."""
        B, _, C = self.hide.shape
        after = torch.ones(B, tokens, dtype=torch.bool, device=self.drop.device)
        return MaskDraw(self.strategy, torch.cat([self.drop, after], 1),
                        torch.cat([self.hide, after[..., None].expand(-1, -1, C)], 1))


def _count(ratio: float, total: int) -> int:
    """At least one hidden and one kept, when there are two or more."""
    if total < 2:
        return total
    return min(max(int(round(ratio * total)), 1), total - 1)


def _choose(B: int, total: int, k: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """[B, total] bool with exactly k True per row, uniformly placed."""
    noise = torch.rand(B, total, generator=generator, device=device)
    idx = noise.argsort(dim=1)[:, :k]
    out = torch.zeros(B, total, dtype=torch.bool, device=device)
    return out.scatter_(1, idx, True)


def random_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    return _choose(B, Tp * S, _count(ratio, Tp * S), generator, device)


def tube_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    cells = _choose(B, S, _count(ratio, S), generator, device)
    return cells[:, None, :].expand(B, Tp, S).reshape(B, Tp * S)


def block_mask(B, Tp, S, ratio, generator=None, device="cpu", edges: torch.Tensor | None = None) -> torch.Tensor:
    k = _count(ratio, S)
    if edges is None:
        start = torch.randint(0, S - k + 1, (B, 1), generator=generator, device=device)
        pos = torch.arange(S, device=device)[None]
        cells = (pos >= start) & (pos < start + k)
    else:
        cells = _neighbourhoods(B, S, k, edges.to(device), generator, device)
    return cells[:, None, :].expand(B, Tp, S).reshape(B, Tp * S)


def _neighbourhoods(B: int, S: int, k: int, edges: torch.Tensor, generator, device) -> torch.Tensor:
    """[B, S] bool: per sample the k units nearest in hops over ``edges [2, E]`` (either way) to a random seed."""
    source, target = torch.cat([edges, edges.flip(0)], 1)
    seeds = torch.randint(0, S, (B,), generator=generator, device=device)
    reached = torch.nn.functional.one_hot(seeds, S).bool()
    hops = torch.where(reached, 0, S)  # S: not reached
    for hop in range(1, S):
        if bool((reached.sum(1) >= k).all()):
            break
        grown = reached | (torch.zeros(B, S, device=device).index_add_(1, target, reached[:, source].float()) > 0)
        if torch.equal(grown, reached):
            break
        hops = torch.where(grown & ~reached, hop, hops)
        reached = grown
    order = (hops + torch.rand(B, S, generator=generator, device=device)).argsort(1)[:, :k]
    return torch.zeros(B, S, dtype=torch.bool, device=device).scatter_(1, order, True)


def frame_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    frames = _choose(B, Tp, _count(ratio, Tp), generator, device)
    return frames[:, :, None].expand(B, Tp, S).reshape(B, Tp * S)


def temporal_mask(B, Tp, S, ratio, generator=None, device="cpu") -> torch.Tensor:
    k = _count(ratio, Tp)
    frames = torch.zeros(B, Tp, dtype=torch.bool, device=device)
    frames[:, Tp - k :] = True
    return frames[:, :, None].expand(B, Tp, S).reshape(B, Tp * S)


TOKEN_STRATEGIES = {
    "random": random_mask,
    "tube": tube_mask,
    "block": block_mask,
    "frame": frame_mask,
    "temporal": temporal_mask,
}
STRATEGIES = (*TOKEN_STRATEGIES, "attribute")


def attribute_mask(B, Tp, S, C, ratio, generator=None, device="cpu") -> torch.Tensor:
    """[B, L, C]: per sample one attribute hidden at ratio*L token positions."""
    L = Tp * S
    where = _choose(B, L, _count(ratio, L), generator, device)
    which = torch.randint(0, C, (B,), generator=generator, device=device)
    onehot = torch.nn.functional.one_hot(which, C).bool()
    return where[:, :, None] & onehot[:, None, :]


def draw_mask(strategy: str, B: int, Tp: int, S: int, C: int, ratio: float = 0.5,
              generator: torch.Generator | None = None, device="cpu", edges: torch.Tensor | None = None) -> MaskDraw:
    """A draw of ``strategy``; ``edges [2, E]``: the spatial patches are the units of a region graph."""
    if strategy == "attribute":
        if C < 2:
            raise ValueError("the attribute mask needs data with two or more attributes")
        hide = attribute_mask(B, Tp, S, C, ratio, generator, device)
        return MaskDraw(strategy, torch.zeros(B, Tp * S, dtype=torch.bool, device=device), hide)
    if strategy not in TOKEN_STRATEGIES:
        raise ValueError(f"unknown mask strategy {strategy!r}; known: {list(STRATEGIES)}")
    extra = {"edges": edges} if strategy == "block" and edges is not None else {}
    drop = TOKEN_STRATEGIES[strategy](B, Tp, S, ratio, generator, device, **extra)
    return MaskDraw(strategy, drop, drop[:, :, None].expand(B, Tp * S, C))


def draw_for_batch(batch: dict, strategies: list[str], Tp: int, S: int, ratio: float, training: bool,
                   strategy: str | None = None, edges: torch.Tensor | None = None,
                   history_frames: int | None = None) -> MaskDraw:
    """A mask for ``batch`` with a strategy drawn from ``strategies`` (``attribute`` only for multi-attribute
    data; ``temporal`` and ``frame`` only over two or more time patches), or ``strategy``. ``edges``: the spatial
    patches are the units of a region graph (``block`` follows it). ``history_frames``: only the first so many
    time patches are drawn over; the later ones are dropped and hidden whole (the future, which the inputs do
    not show). Outside training the draw is fixed by the windows' origins, so validation scores are comparable
    across epochs."""
    x = batch["x"]
    B, C = x.shape[0], x.shape[-1]
    frames = Tp if history_frames is None else history_frames
    choices = [s for s in strategies if (s != "attribute" or C > 1) and (s not in ("temporal", "frame") or frames > 1)]
    if frames * S < 2 or not (choices or strategy):
        raise UrbanstError(f"no mask strategy among {strategies} can hide part of {frames} x {S} tokens of {C} "
                           "attribute(s); use a longer --history or finer time patches")
    generator = None
    if training:
        pick = int(torch.randint(len(choices), ()))
    else:
        seed = int(batch["origin"].sum()) if "origin" in batch else 0
        generator = torch.Generator(device=x.device).manual_seed(seed)
        pick = seed % len(choices)
    draw = draw_mask(strategy or choices[pick], B, frames, S, C, ratio, generator, x.device, edges)
    return draw if frames == Tp else draw.then_dropped((Tp - frames) * S)


def whole_window(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, seen)`` ``[B, H + P, N, C]``: inputs and targets joined in scaled units, 0 where not observed
    (pre-training on training windows, whose targets the model may read)."""
    seen = torch.cat([batch["input_mask"], batch["target_mask"]], dim=1)
    values = torch.cat([batch["x"], torch.where(batch["target_mask"], to_scaled(batch, batch["y"]), torch.zeros(()))], 1)
    return torch.where(seen, values, torch.zeros(())), seen


def inputs_window(batch: dict, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, seen)`` ``[B, H + horizon, N, C]``: the inputs in scaled units, then ``horizon`` steps never seen
    (test-time adaptation rebuilds inputs in the forecasting layout and reads no target)."""
    x, seen = batch["x"], batch["input_mask"]
    future = (x.shape[0], horizon, *x.shape[2:])
    return (torch.cat([torch.where(seen, x, torch.zeros((), dtype=x.dtype)), x.new_zeros(future)], 1),
            torch.cat([seen, seen.new_zeros(future)], 1))
