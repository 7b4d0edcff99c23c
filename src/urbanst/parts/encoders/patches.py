"""3-D patch tokens of any grid or region graph (UniST's encoder).

A batch ``[B, T, N, C]`` becomes a volume ``[B, T, Hg, Wg, F]``: a grid folds N back to ``(H, W)``; region and
sensor data (no full grid) lay their units on a 1-D spatial axis ``(1, N)`` and use one unit per token
(h = w = 1), since their order carries no geometry. The volume is padded with unobserved entries to whole
patches (history at its start, so that no token straddles the present; horizon and the grid at their end).

Each entry carries ``slots`` attribute slots: the scaled value (0 where unseen) and an "observed and visible"
flag, so missing values and hidden attributes are never silently zero; data with fewer attributes than slots
leave the rest empty (value 0, flag 0), so one set of weights serves datasets with 1..slots attributes. A
patch becomes a token through a 3-D convolution with stride = kernel, computed as one matmul over the patches.

Tokens are in time-major order ``(t, h, w)``: the history tokens are the first ``Th * S`` and the future
tokens the last ``Tf * S``, so forecasting slices instead of gathering. Each token's position: 2-D sin-cos
over the patch grid (any size), or the region graph's eigenvector positions through a learned projection
(one for the encoder, one for the decoder); plus 1-D sin-cos over time patches and time-of-day and weekday
embeddings averaged over each time patch. ``steps`` gives the history one step at a time, for the prompt that
attends over recent steps.

What depends on a dataset's units (its grid, or its region graph) is the *home* geometry, kept as buffers so
it saves and loads with the weights; batches of other datasets carry their own (see
:mod:`~urbanst.parts.encoders.patches_geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from urbanst.contract import DataSpec
from urbanst.errors import UrbanstError
from urbanst.nn.attention import linear
from urbanst.nn.embeddings import TimeEmbedding, UnitEmbedding
from urbanst.parts.encoders.patches_geometry import RegionGraph, batch_geometry, region_graph, sincos_2d, sincos_t

# -- layout ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    grid: bool
    Hg: int  # spatial shape of the volume before padding (regions: 1 x N)
    Wg: int
    pt: int
    ph: int
    pw: int
    history: int
    horizon: int

    @property
    def hist_pad(self) -> int:
        return (-self.history) % self.pt

    @property
    def fut_pad(self) -> int:
        return (-self.horizon) % self.pt

    @property
    def Hp(self) -> int:
        return -(-self.Hg // self.ph)

    @property
    def Wp(self) -> int:
        return -(-self.Wg // self.pw)

    @property
    def S(self) -> int:
        return self.Hp * self.Wp

    @property
    def Th(self) -> int:
        return (self.history + self.hist_pad) // self.pt

    @property
    def Tf(self) -> int:
        return (self.horizon + self.fut_pad) // self.pt

    @property
    def Tp(self) -> int:
        return self.Th + self.Tf

    @property
    def patch_volume(self) -> int:
        return self.pt * self.ph * self.pw


def to_volume(values: torch.Tensor, layout: Layout, front: int, back: int) -> torch.Tensor:
    """``[B, T, N, F]`` -> ``[B, front + T + back, Hp*ph, Wp*pw, F]``, zero padded."""
    vol = values.reshape(values.shape[0], values.shape[1], layout.Hg, layout.Wg, values.shape[-1])
    pad_h, pad_w = layout.Hp * layout.ph - layout.Hg, layout.Wp * layout.pw - layout.Wg
    if front or back or pad_h or pad_w:
        vol = F.pad(vol, (0, 0, 0, pad_w, 0, pad_h, front, back))
    return vol


def from_volume(vol: torch.Tensor, layout: Layout, front: int, steps: int) -> torch.Tensor:
    """Inverse of :func:`to_volume`: ``[B, T', H', W', F]`` -> ``[B, steps, N, F]``."""
    vol = vol[:, front : front + steps, : layout.Hg, : layout.Wg]
    return vol.reshape(vol.shape[0], steps, layout.Hg * layout.Wg, vol.shape[-1])


def patchify(vol: torch.Tensor, layout: Layout) -> torch.Tensor:
    """``[B, T', H', W', F]`` -> ``[B, L, F * pt * ph * pw]`` in the order of a Conv3d kernel's input."""
    return rearrange(vol, "b (t pt) (h ph) (w pw) f -> b (t h w) (f pt ph pw)", pt=layout.pt, ph=layout.ph, pw=layout.pw)


def unpatchify(tokens: torch.Tensor, layout: Layout, Tp: int) -> torch.Tensor:
    """``[B, Tp * S, F * pt * ph * pw]`` -> ``[B, Tp * pt, Hp * ph, Wp * pw, F]``."""
    return rearrange(tokens, "b (t h w) (f pt ph pw) -> b (t pt) (h ph) (w pw) f",
                     t=Tp, h=layout.Hp, w=layout.Wp, pt=layout.pt, ph=layout.ph, pw=layout.pw)


def unpatch(tokens: torch.Tensor, layout: Layout, front: int, steps: int) -> torch.Tensor:
    """Per-patch outputs ``[B, Tp * S, F * pt * ph * pw]`` -> ``[B, steps, N, F]``, from step ``front`` of the volume."""
    return from_volume(unpatchify(tokens, layout, tokens.shape[1] // layout.S), layout, front, steps)


def spread(mask: torch.Tensor, layout: Layout, front: int, steps: int) -> torch.Tensor:
    """A flag per (token, attribute) ``[B, L, C]`` -> ``[B, steps, N, C]``: each entry gets its patch's flag."""
    B, L, C = mask.shape
    return unpatch(mask[..., None].expand(B, L, C, layout.patch_volume).reshape(B, L, -1), layout, front, steps)


# -- tokens ---------------------------------------------------------------------------


class PatchTokens(nn.Module):
    """Patch embeddings (``embed_grid``, ``embed_region``), time embedding, region positions and the home
    geometry: ``geometry`` gives a batch's layout, ``patches`` and ``embed`` its tokens, ``positions`` where
    and when they sit. ``unit_embedding`` adds a learned vector per unit of the home dataset (none for others),
    which ties the weights to its units."""

    def __init__(self, dim: int, slots: int, patch_t: int, patch_hw: int, region_patch_t: int, time_slots: int,
                 pe_dim: int, num_units: int, grid_shape: list[int] | None, num_edges: int = 0,
                 unit_embedding: bool = False):
        super().__init__()
        self.dim, self.slots, self.pe_dim = dim, slots, pe_dim
        self.patch_t, self.patch_hw, self.region_patch_t = patch_t, patch_hw, region_patch_t
        kernel, region_kernel = (patch_t, patch_hw, patch_hw), (region_patch_t, 1, 1)
        self.embed_grid = nn.Conv3d(2 * slots, dim, kernel, stride=kernel)
        self.embed_region = nn.Conv3d(2 * slots, dim, region_kernel, stride=region_kernel)
        self.time = TimeEmbedding(time_slots, dim)
        self.region_pos = nn.Linear(pe_dim, dim)
        self.region_pos_dec = nn.Linear(pe_dim, dim)
        self._hold_home(num_units, grid_shape, num_edges=num_edges)
        self.unit_embed = UnitEmbedding(num_units, dim, "zeros") if unit_embedding else None

    def reset_parameters(self) -> None:
        """Xavier-uniform patch embeddings (as one linear map each) with zero bias, truncated-normal time tables."""
        for conv in (self.embed_grid, self.embed_region):
            nn.init.xavier_uniform_(conv.weight.view(self.dim, -1))
            nn.init.zeros_(conv.bias)
        self.time.init_normal(0.02)

    # -- geometry -------------------------------------------------------------------------
    def set_home(self, spec: DataSpec) -> RegionGraph | None:
        """Make ``spec``'s units the home: its grid, or the region graph derived from its adjacency or coordinates
        (returned; kept as buffers, saved with the weights)."""
        graph = None
        if spec.grid_shape is None:
            graph = region_graph(spec.adjacency, spec.coords, spec.num_units, self.pe_dim)
        self._hold_home(spec.num_units, spec.grid_shape, graph)
        if self.unit_embed is not None:
            self.unit_embed = UnitEmbedding(spec.num_units, self.dim, "zeros").to(self.region_pos.weight.device)
        return graph

    def _hold_home(self, num_units: int, grid_shape, graph: RegionGraph | None = None, num_edges: int = 0) -> None:
        """The home geometry; a region graph not known yet is held as zeros of ``num_edges`` edges (to be loaded)."""
        self.home_units = num_units
        self.home_grid = tuple(grid_shape) if grid_shape is not None else None
        for name in ("home_pe", "home_edge_index", "home_edge_weight"):
            self._buffers.pop(name, None)
        if grid_shape is None:
            if graph is None:
                graph = RegionGraph(torch.zeros(num_units, self.pe_dim), torch.zeros(2, num_edges, dtype=torch.long),
                                    torch.zeros(num_edges))
            self.register_buffer("home_pe", graph.pe)
            self.register_buffer("home_edge_index", graph.edge_index)
            self.register_buffer("home_edge_weight", graph.edge_weight)

    def geometry(self, batch: dict, history: int, horizon: int) -> tuple[Layout, RegionGraph | None, bool]:
        """The batch's token layout, its region graph (None for grids), and whether it is the home dataset's."""
        N = batch["x"].shape[2]
        home = "grid_shape" not in batch
        if not home:
            grid, graph = batch_geometry(batch)
        elif N == self.home_units:
            grid = self.home_grid
            graph = None if grid else RegionGraph(self.home_pe, self.home_edge_index, self.home_edge_weight)
        else:
            raise UrbanstError(
                f"the model was set up for {self.home_units} units and this batch has {N}: call model.attach(spec) "
                "for the new dataset, or wrap its windows in "
                "urbanst.parts.encoders.patches_geometry.SpatialWindows(windows, spec)")
        if grid is not None:
            if grid[0] * grid[1] != N:
                raise UrbanstError(f"grid {grid} does not hold the batch's {N} units")
            p = self.patch_hw
            return Layout(True, grid[0], grid[1], self.patch_t, p, p, history, horizon), None, home
        if graph.pe.shape[-1] != self.pe_dim:
            raise UrbanstError(f"unit positions have {graph.pe.shape[-1]} columns, the model expects {self.pe_dim}")
        return Layout(False, 1, N, self.region_patch_t, 1, 1, history, horizon), graph, home

    # -- tokens ---------------------------------------------------------------------------
    def features(self, values: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """``[B, T, N, C]`` values and visibility -> ``[B, T, N, 2 * slots]`` (values then flags)."""
        pad = self.slots - values.shape[-1]
        values = torch.where(seen, values, torch.zeros((), dtype=values.dtype, device=values.device))
        return torch.cat([F.pad(values, (0, pad)), F.pad(seen.to(values.dtype), (0, pad))], dim=-1)

    def patches(self, values: torch.Tensor, seen: torch.Tensor, layout: Layout, front: int, back: int,
                hide: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, L, 2 * slots * patch volume]``: the patches of a window padded by ``front`` and ``back`` steps;
        ``hide [B, L, C]`` zeroes the value and flag of those (token, attribute) pairs."""
        patches = patchify(to_volume(self.features(values, seen), layout, front, back), layout)
        if hide is None:
            return patches
        B, L, _ = patches.shape
        keep = F.pad(~hide, (0, self.slots - hide.shape[-1]), value=True).to(patches.dtype)
        return (patches.view(B, L, 2, self.slots, -1) * keep[:, :, None, :, None]).view(B, L, -1)

    def embed(self, patches: torch.Tensor, layout: Layout) -> torch.Tensor:
        conv = self.embed_grid if layout.grid else self.embed_region
        return linear(patches, conv.weight.flatten(1), conv.bias)  # Conv3d with stride = kernel, as one matmul

    def steps(self, batch: dict, patches: torch.Tensor, encoded: torch.Tensor, layout: Layout) -> torch.Tensor:
        """``[B, history, S, D]``: the history step by step, whatever a token's length (the temporal-closeness
        prompt's sequence). A step of a spatial patch is embedded as a patch that holds it at every time offset
        (the kernel summed over time), plus the encoder's output for its token ``encoded [B, Th * S, D]``, its
        time of day and weekday, and its position."""
        conv = self.embed_grid if layout.grid else self.embed_region
        B, Th, S, pt = patches.shape[0], layout.Th, layout.S, layout.pt
        per_step = patches.view(B, Th, S, -1, pt, layout.ph * layout.pw).permute(0, 1, 4, 2, 3, 5)
        per_step = per_step.reshape(B, Th * pt, S, -1)
        tokens = linear(per_step, conv.weight.sum(2).flatten(1), conv.bias)
        tokens = tokens + encoded.view(B, Th, 1, S, -1).expand(-1, -1, pt, -1, -1).reshape(tokens.shape)
        H = layout.history
        when = self.time(batch["time_of_day"][:, :H], batch["day_of_week"][:, :H])
        when = when + sincos_t(self.dim, H, tokens.device)
        return tokens[:, layout.hist_pad :] + when[:, :, None]

    def periodic(self, batch: dict, layout: Layout) -> torch.Tensor | None:
        """``[B, K, Tf * S, D]``: the values at the same slot on K earlier days or weeks (``batch["periodic"]``)
        embedded as future tokens; None when the batch has none."""
        per = batch.get("periodic")
        if per is None or per.shape[1] == 0:
            return None
        B, K, P, N, C = per.shape
        seen = batch.get("periodic_mask", torch.ones_like(per, dtype=torch.bool))
        patches = self.patches(per.reshape(B * K, P, N, C), seen.reshape(B * K, P, N, C), layout, 0, layout.fut_pad)
        return self.embed(patches, layout).view(B, K, layout.Tf * layout.S, -1)

    # -- positions ------------------------------------------------------------------------
    def positions(self, batch: dict, layout: Layout, graph: RegionGraph | None, steps: int,
                  home: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder and decoder additions ``[B, Tp * S, D]``: space and time positions, time features and, on the
        home dataset, the unit embedding (averaged over each patch of a grid)."""
        D, device = self.dim, self.region_pos.weight.device
        if layout.grid:
            enc_s = dec_s = sincos_2d(D, layout.Hp, layout.Wp, device)
        else:
            pe = graph.pe.to(device)
            enc_s, dec_s = self.region_pos(pe), self.region_pos_dec(pe)
        if self.unit_embed is not None and home:
            units = self.unit_embed.weight
            if layout.grid:  # cells -> the mean over each patch
                cells = units.t().reshape(1, -1, layout.Hg, layout.Wg)
                cells = F.pad(cells, (0, layout.Wp * layout.pw - layout.Wg, 0, layout.Hp * layout.ph - layout.Hg))
                units = F.avg_pool2d(cells, (layout.ph, layout.pw)).flatten(2)[0].t()
            enc_s, dec_s = enc_s + units, dec_s + units
        t = sincos_t(D, layout.Tp, device)[:, None] + self._time(batch, layout, steps)[:, :, None]  # [B, Tp, 1, D]
        B = t.shape[0]
        return (t + enc_s).reshape(B, -1, D), (t + dec_s).reshape(B, -1, D)

    def _time(self, batch: dict, layout: Layout, steps: int) -> torch.Tensor:
        """``[B, Tp, D]``: time-of-day + weekday embeddings averaged over each time patch."""
        emb = self.time(batch["time_of_day"][:, :steps], batch["day_of_week"][:, :steps])
        idx = torch.arange(-layout.hist_pad, layout.Tp * layout.pt - layout.hist_pad, device=emb.device)
        emb = emb[:, idx.clamp(0, steps - 1)]  # edge steps stand in for the padding
        return emb.view(emb.shape[0], layout.Tp, layout.pt, -1).mean(2)


# -- one single-attribute window per attribute (UniST's released way) ----------------------

_PER_CHANNEL = ("x", "input_mask", "y", "target_mask")


def fold_channels(batch: dict) -> dict:
    """A batch of C attributes -> C times as many single-attribute windows (attribute-major per window)."""
    C = batch["x"].shape[-1]
    out = dict(batch)
    for key in _PER_CHANNEL:
        if key in batch:
            out[key] = rearrange(batch[key], "b t n c -> (b c) t n 1")
    for key in ("periodic", "periodic_mask", "periodic_inputs", "periodic_inputs_mask"):
        if key in batch:
            out[key] = rearrange(batch[key], "b k p n c -> (b c) k p n 1")
    for key in ("time_of_day", "day_of_week", "origin"):
        if key in batch:
            out[key] = batch[key].repeat_interleave(C, dim=0)
    for key in ("scale_mean", "scale_std"):
        if key in batch:
            out[key] = rearrange(batch[key], "b c -> (b c) 1")
    return out


def unfold_channels(values: torch.Tensor, C: int) -> torch.Tensor:
    return rearrange(values, "(b c) p n 1 -> b p n c", c=C)
