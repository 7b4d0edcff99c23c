"""UniST (Yuan et al., KDD 2024): a masked ST autoencoder; forecasting = reconstructing the masked future.

How a batch flows (fused channels, the default):

1. ``[history + horizon]`` volume ``[B, T, Hg, Wg, 2 * slots]``: per attribute slot the
   scaled value (0 where unseen) and an "observed and visible" flag, so missing values and
   hidden attributes are never silently zero. Patches of ``pt x ph x pw`` (grids,
   default 2x2x2) or ``pt x 1 x 1`` (regions: one unit per token) become tokens through a
   3-D convolution with stride = kernel (computed as one matmul over the patches).
2. Fixed sin-cos positions: 2-D over the patch grid (any size) or the Laplacian
   eigenvectors of the region graph through a learned projection, plus 1-D over time
   patches; plus time-of-day (48 slots) and weekday embeddings averaged over each patch.
3. The encoder sees the visible tokens only (forecasting: the history tokens, a slice).
4. The decoder gets the encoded tokens back in place, the mask token elsewhere, positions
   again and, on the future tokens only, the ST prompts (see ``prompts.py``).
5. An MLP head turns each future token back into its ``pt x ph x pw x slots`` values.

Channels: the released code turns each attribute into its own single-channel volume, so a
C-attribute dataset costs C full passes. urbanst fuses the attributes of a patch into one
token through the patch convolution's input channels (``channels="fused"``): C times fewer
tokens, cross-attribute patterns seen at once, and the per-attribute mask still works
because each attribute has its own "visible" input flag (a token with one attribute hidden
stays visible with that attribute's value and flag zeroed; the loss covers exactly the
hidden entries). Datasets with fewer attributes than ``max_channels`` leave the extra slots
empty (value 0, flag 0), so one set of weights serves datasets with 1..max_channels
attributes. ``channels="separate"`` reproduces the original (no attribute slots; any C).

Units and shapes: nothing in the weights depends on the number of units or the grid size.
What depends on a dataset's units (its region graph: eigenvector positions, neighbour
operator) is derived by ``init_from_data(spec)`` and kept as buffers for the model's own
("home") dataset, so it saves and loads with the weights; batches of other datasets carry
their own structure (``grid_shape``, ``unit_pe``, ``edge_index``, ``edge_weight``; see
``geometry.SpatialWindows``), and ``attach(spec)`` moves the model to a new home dataset
(zero-shot or fine-tuning elsewhere).

Anchor (``anchor=True``, the default): the forecast is seasonal naive's (the same slot a week
earlier, else a day; the values the period prompt reads) plus the decoded correction, whose
output layer starts at zero, so training starts from seasonal naive instead of from the mean.
Masked reconstruction (pre-training, test-time adaptation) is not anchored.

Stages: masked pre-training (``reconstruct(batch, "window")``: masked reconstruction over the whole
window with a strategy drawn per batch, without prompts), forecasting (the task's masked MAE, or MSE
with ``loss="mse"``, on the scored targets, prompts on), and ``prompt_tuning()`` (freezes everything
but the prompt network, and optionally the head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.contract import DataSpec, ModelOutput, to_original, to_scaled
from urbanst.nn.anchors import seasonal_anchor
from urbanst.nn.attention import Block, xavier_init
from urbanst.models.unist.config import UniSTConfig
from urbanst.models.unist.geometry import SpatialWindows
from urbanst.models.unist.masking import MaskDraw, draw_mask
from urbanst.models.unist.patching import (
    Layout,
    RegionGraph,
    from_volume,
    patchify,
    region_graph,
    sincos_2d,
    sincos_t,
    to_volume,
    unpatchify,
)
from urbanst.models.unist.prompts import STPrompt

CONTEXT_KEYS = ("grid_shape", "unit_pe", "edge_index", "edge_weight")


class UniST(STModel):
    """UniST: 3-D patch tokens in a masked ST autoencoder with knowledge-guided prompts; any grid or graph."""

    name = "unist"
    config_class = UniSTConfig
    default_lr = 1e-3
    reconstructs = True

    def __init__(self, config: UniSTConfig):
        super().__init__(config)
        c = config
        D = c.width
        enc_depth, dec_depth = c.depths
        heads, dec_heads = c.heads
        slots = c.slots
        pt, p, rt = c.patch_t, c.patch_hw, c.time_patch(grid=False)
        self.embed_grid = nn.Conv3d(2 * slots, D, (pt, p, p), stride=(pt, p, p))
        self.embed_region = nn.Conv3d(2 * slots, D, (rt, 1, 1), stride=(rt, 1, 1))
        self.tod_embed = nn.Embedding(c.tod_slots, D)
        self.dow_embed = nn.Embedding(7, D)
        self.region_pos = nn.Linear(c.pe_dim, D)
        self.region_pos_dec = nn.Linear(c.pe_dim, D)
        self.encoder = nn.ModuleList(Block(D, heads, c.mlp_ratio, dropout=c.dropout, attention_dropout=c.dropout) for _ in range(enc_depth))
        self.encoder_norm = nn.LayerNorm(D, eps=1e-6)
        self.decoder_embed = nn.Linear(D, D)
        self.mask_token = nn.Parameter(torch.zeros(D))
        self.decoder = nn.ModuleList(Block(D, dec_heads, c.mlp_ratio, dropout=c.dropout, attention_dropout=c.dropout) for _ in range(dec_depth))
        self.decoder_norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D), nn.GELU())
        self.head_grid = nn.Linear(D, slots * pt * p * p)
        self.head_region = nn.Linear(D, slots * rt)
        self.prompt = (
            STPrompt(D, c.history, slots, c.memory_slots, c.prompt_parts, residual=c.prompt_residual) if c.prompts and c.prompt_parts else None
        )
        xavier_init(self)
        for conv in (self.embed_grid, self.embed_region):
            nn.init.xavier_uniform_(conv.weight.view(D, -1))
            nn.init.zeros_(conv.bias)
        for emb in (self.tod_embed, self.dow_embed):
            nn.init.trunc_normal_(emb.weight, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        if c.anchor:  # forecasting starts exactly at seasonal naive
            for head in (self.head_grid, self.head_region):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        if self.prompt is not None:
            for pool in (self.prompt.spatial_memory, self.prompt.temporal_memory):
                nn.init.trunc_normal_(pool.keys, std=0.02)
                nn.init.trunc_normal_(pool.values, std=0.02)
        self._allocate_home_graph()
        self.unit_embed = nn.Parameter(torch.zeros(c.num_units, D)) if c.unit_embedding else None
        if c.lr:
            self.default_lr = c.lr

    # -- the home dataset's spatial structure -------------------------------------------
    def _allocate_home_graph(self) -> None:
        c = self.config
        if c.grid_shape is None:
            self.register_buffer("home_pe", torch.zeros(c.num_units, c.pe_dim))
            self.register_buffer("home_edge_index", torch.zeros(2, c.num_edges, dtype=torch.long))
            self.register_buffer("home_edge_weight", torch.zeros(c.num_edges))
        else:
            for name in ("home_pe", "home_edge_index", "home_edge_weight"):
                if name in self._buffers:
                    del self._buffers[name]

    def init_from_data(self, spec: DataSpec) -> None:
        """Derive the region graph (positions, neighbour operator) of ``spec``'s units; grids need nothing."""
        c = self.config
        if c.grid_shape is not None:
            self._allocate_home_graph()
            return
        graph = region_graph(spec.adjacency, spec.coords, spec.num_units, c.pe_dim)
        c.num_edges = int(graph.edge_weight.numel())
        self._allocate_home_graph()
        device = self.mask_token.device
        self.home_pe.copy_(graph.pe.to(device))
        self.home_edge_index.copy_(graph.edge_index.to(device))
        self.home_edge_weight.copy_(graph.edge_weight.to(device))

    def attach(self, spec: DataSpec) -> UniST:
        """Make ``spec``'s dataset the model's home (zero-shot / fine-tuning on other units); weights are kept."""
        c = self.config
        if c.channels == "fused" and spec.num_channels > c.slots:
            raise UrbanstError(f"unist has {c.slots} attribute slots; {spec.dataset!r} has {spec.num_channels} attributes")
        c.num_units, c.num_channels = spec.num_units, spec.num_channels
        c.grid_shape = list(spec.grid_shape) if spec.grid_shape is not None else None
        c.steps_per_day, c.lags = spec.steps_per_day, list(spec.lags)
        c.horizon = spec.horizon  # history stays: the prompt network reads config.history steps
        self.init_from_data(spec)
        if self.unit_embed is not None:
            self.unit_embed = nn.Parameter(torch.zeros(spec.num_units, c.width, device=self.mask_token.device))
        return self

    @property
    def unit_agnostic(self) -> bool:  # no weight is tied to a unit unless it has unit embeddings
        return not self.config.unit_embedding

    def _same_home(self, spec: DataSpec) -> bool:
        c = self.config
        grid = list(spec.grid_shape) if spec.grid_shape is not None else None
        return c.num_units == spec.num_units and c.num_channels == spec.num_channels and c.grid_shape == grid

    def set_target(self, spec: DataSpec) -> None:
        """Zero-shot on other units: the target becomes the home (its grid or region graph); no weight changes."""
        if not self._same_home(spec):
            self.attach(spec)

    def start_finetune(self, spec: DataSpec) -> None:
        """``fit --init``: move to the target's units, then prompt-tune (prompts and head train, the rest is frozen)."""
        if not self._same_home(spec):
            self.attach(spec)
        if self.prompt is not None:
            self.prompt_tuning(train_head=True)

    @classmethod
    def build_for_pretraining(cls, specs: list[DataSpec], **options) -> UniST:
        """Attribute slots for the dataset with the most attributes; datasets with fewer leave slots empty."""
        if options.get("channels", "fused") == "fused":
            options.setdefault("max_channels", max(spec.num_channels for spec in specs))
        return cls.build(specs[0], **options)

    def pretraining_windows(self, windows, spec: DataSpec):
        return windows if self._same_home(spec) else SpatialWindows(windows, spec, self.config.pe_dim)

    def _geometry(self, batch: dict, history: int, horizon: int) -> tuple[Layout, RegionGraph | None, bool]:
        """The batch's token layout, its region graph (None for grids), and whether it is the home dataset's."""
        c = self.config
        N = batch["x"].shape[2]
        graph = None
        home = "grid_shape" not in batch
        if not home:
            gs = batch["grid_shape"].reshape(-1).tolist()
            grid = (int(gs[0]), int(gs[1])) if len(gs) == 2 else None
            if grid is None:
                graph = RegionGraph(batch["unit_pe"], batch["edge_index"], batch["edge_weight"])
        elif N == c.num_units:
            grid = tuple(c.grid_shape) if c.grid_shape is not None else None
            if grid is None:
                graph = RegionGraph(self.home_pe, self.home_edge_index, self.home_edge_weight)
        else:
            raise UrbanstError(
                f"unist was set up for {c.num_units} units and this batch has {N}: call model.attach(spec) for the new "
                "dataset, or wrap its windows in urbanst.models.unist.SpatialWindows(windows, spec)"
            )
        if grid is not None:
            if grid[0] * grid[1] != N:
                raise UrbanstError(f"unist: grid {grid} does not hold the batch's {N} units")
            return Layout(True, grid[0], grid[1], c.patch_t, c.patch_hw, c.patch_hw, history, horizon), None, home
        if graph.pe.shape[-1] != c.pe_dim:
            raise UrbanstError(f"unist: unit positions have {graph.pe.shape[-1]} columns, the model expects {c.pe_dim}")
        return Layout(False, 1, N, c.time_patch(False), 1, 1, history, horizon), graph, home

    # -- pieces -----------------------------------------------------------------------
    def _features(self, values: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """``[B, T, N, C]`` values and visibility -> ``[B, T, N, 2 * slots]`` (values then flags)."""
        pad = self.config.slots - values.shape[-1]
        values = torch.where(seen, values, torch.zeros((), dtype=values.dtype, device=values.device))
        return torch.cat([F.pad(values, (0, pad)), F.pad(seen.to(values.dtype), (0, pad))], dim=-1)

    def _embed(self, patches: torch.Tensor, layout: Layout) -> torch.Tensor:
        conv = self.embed_grid if layout.grid else self.embed_region
        return F.linear(patches, conv.weight.flatten(1), conv.bias)  # Conv3d with stride = kernel, as one matmul

    def _head(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        return (self.head_grid if layout.grid else self.head_region)(self.head(tokens))

    def _time(self, batch: dict, layout: Layout, steps: int) -> torch.Tensor:
        """``[B, Tp, D]``: time-of-day + weekday embeddings averaged over each time patch."""
        slots = self.config.tod_slots
        tod = torch.clamp((batch["time_of_day"][:, :steps] * slots).long(), 0, slots - 1)
        emb = self.tod_embed(tod) + self.dow_embed(batch["day_of_week"][:, :steps].long() % 7)
        idx = torch.arange(-layout.hist_pad, layout.Tp * layout.pt - layout.hist_pad, device=emb.device)
        emb = emb[:, idx.clamp(0, steps - 1)]  # edge steps stand in for the padding
        return emb.view(emb.shape[0], layout.Tp, layout.pt, -1).mean(2)

    def _positions(self, batch: dict, layout: Layout, graph: RegionGraph | None, steps: int, home: bool = False):
        """Encoder and decoder additions ``[B, Tp * S, D]`` (space + time position + time features)."""
        D = self.config.width
        device = self.mask_token.device
        if layout.grid:
            enc_s = dec_s = sincos_2d(D, layout.Hp, layout.Wp, device)
        else:
            pe = graph.pe.to(device)
            enc_s, dec_s = self.region_pos(pe), self.region_pos_dec(pe)
        if self.unit_embed is not None and home:
            unit = self.unit_embed
            if layout.grid:  # cells -> the mean over each patch
                grid = unit.t().reshape(1, -1, layout.Hg, layout.Wg)
                grid = F.pad(grid, (0, layout.Wp * layout.pw - layout.Wg, 0, layout.Hp * layout.ph - layout.Hg))
                unit = F.avg_pool2d(grid, (layout.ph, layout.pw)).flatten(2)[0].t()
            enc_s, dec_s = enc_s + unit, dec_s + unit
        t = sincos_t(D, layout.Tp, device)[:, None] + self._time(batch, layout, steps)[:, :, None]  # [B, Tp, 1, D]
        B = t.shape[0]
        return (t + enc_s).reshape(B, -1, D), (t + dec_s).reshape(B, -1, D)

    def _decode(self, tokens: torch.Tensor, queries: int | None) -> torch.Tensor:
        last = len(self.decoder) - 1
        for i, blk in enumerate(self.decoder):
            tokens = blk(tokens, queries=queries if i == last else None)
        return self.decoder_norm(tokens)

    # -- forecasting --------------------------------------------------------------------
    def forward(self, batch: dict) -> ModelOutput:
        """The scaled forecast ``[B, P, N, C]``: the future tokens are masked and reconstructed."""
        if self.config.channels == "separate":
            forecast = _unfold_channels(self._forecast(_fold_channels(batch)), batch["x"].shape[-1])
        else:
            forecast = self._forecast(batch)
        return ModelOutput(forecast, loss=self.config.loss)

    def _forecast(self, batch: dict, use_prompts: bool = True) -> torch.Tensor:
        x = batch["x"]
        B, H, N, C = x.shape
        P = batch["y"].shape[1] if "y" in batch else self.config.horizon
        layout, graph, home = self._geometry(batch, H, P)
        Th, Tf, S, D = layout.Th, layout.Tf, layout.S, self.config.width
        feats = to_volume(self._features(x, batch["input_mask"]), layout, layout.hist_pad, 0)
        enc_add, dec_add = self._positions(batch, layout, graph, H + P, home)
        h = self._embed(patchify(feats, layout), layout) + enc_add[:, : Th * S]
        for blk in self.encoder:
            h = blk(h)
        h = self.encoder_norm(h)
        future = self.mask_token.expand(B, Tf * S, D) + dec_add[:, Th * S :]
        if use_prompts and self.prompt is not None:
            future = future + self._prompts(batch, layout, graph, h.view(B, Th, S, D))
        tokens = torch.cat([self.decoder_embed(h) + dec_add[:, : Th * S], future], dim=1)
        out = self._head(self._decode(tokens, Tf * S), layout)
        vol = unpatchify(out, layout, Tf)
        forecast = from_volume(vol, layout, 0, P)[..., :C]
        return forecast + seasonal_anchor(batch, self.config.lags, P) if self.config.anchor else forecast

    def _prompts(self, batch: dict, layout: Layout, graph: RegionGraph | None, enc_history: torch.Tensor):
        period = None
        if "temporal_period" in self.prompt.parts and "periodic" in batch and batch["periodic"].shape[1] > 0:
            per = batch["periodic"]  # [B, K, P, N, C]
            B, K, P, N, C = per.shape
            seen = batch.get("periodic_mask", torch.ones_like(per, dtype=torch.bool))
            feats = self._features(per.reshape(B * K, P, N, C), seen.reshape(B * K, P, N, C))
            vol = to_volume(feats, layout, 0, layout.fut_pad)
            period = self._embed(patchify(vol, layout), layout).view(B, K, layout.Tf * layout.S, -1)
        op = graph.operator(self.mask_token.device) if graph is not None else None
        history = torch.where(batch["input_mask"], batch["x"], torch.zeros((), dtype=batch["x"].dtype))
        return self.prompt(history, layout, self.config.slots, enc_history, period, op)

    # -- masked reconstruction ----------------------------------------------------------
    def reconstruct(self, batch: dict, span: str = "inputs", strategy: str | None = None) -> ModelOutput:
        """Masked reconstruction (MSE on the hidden observed entries, as the release), without prompts.

        ``span="window"`` (pre-training): the whole window, history and future. ``"inputs"`` (test-time
        adaptation): the input window split in two halves read as history and future; it reads ``x``,
        ``input_mask``, the scaler and the time features of the input steps, never a target."""
        if span == "inputs":
            batch = _inputs_as_window(batch)
        if self.config.channels == "separate":
            batch = _fold_channels(batch)
        prediction, target, scored, _, _ = self.masked_reconstruction(batch, strategy)
        return ModelOutput(prediction, loss="mse", target=target, scored=scored)

    def masked_reconstruction(self, batch: dict, strategy: str | None = None, draw: MaskDraw | None = None):
        """``(prediction, target, scored, hidden, draw)`` for one masked window, each ``[B, T, N, C]`` but the draw.

        The strategy is drawn per batch from ``config.pretrain_strategies`` (``attribute`` only
        for multi-attribute data); in eval mode the draw is fixed by the windows' origins so
        validation scores are comparable across epochs.
        """
        c = self.config
        x, y = batch["x"], batch["y"]
        B, H, N, C = x.shape
        P = y.shape[1]
        seen = torch.cat([batch["input_mask"], batch["target_mask"]], dim=1)
        values = torch.cat([x, torch.where(batch["target_mask"], to_scaled(batch, y), torch.zeros(()))], dim=1)
        values = torch.where(seen, values, torch.zeros(()))
        layout, graph, home = self._geometry(batch, H, P)
        Tp, S, L, D, pv = layout.Tp, layout.S, layout.Tp * layout.S, c.width, layout.patch_volume
        generator = None
        choices = [s for s in c.pretrain_strategies if s != "attribute" or C > 1]
        if not self.training:
            seed = int(batch["origin"].sum()) if "origin" in batch else 0
            generator = torch.Generator(device=x.device).manual_seed(seed)
            pick = seed % len(choices)
        else:
            pick = int(torch.randint(len(choices), ()))
        if draw is None:
            draw = draw_mask(strategy or choices[pick], B, Tp, S, C, c.mask_ratio, generator, x.device)
        slots = c.slots
        patches = patchify(to_volume(self._features(values, seen), layout, layout.hist_pad, layout.fut_pad), layout)
        keep = F.pad(~draw.hide, (0, slots - C), value=True).to(patches.dtype)  # [B, L, slots]
        patches = (patches.view(B, L, 2, slots, pv) * keep[:, :, None, :, None]).view(B, L, -1)
        enc_add, dec_add = self._positions(batch, layout, graph, H + P, home)
        tokens = self._embed(patches, layout) + enc_add
        n_keep = draw.keep_count
        order = torch.argsort(draw.drop.to(torch.int8), dim=1, stable=True)[:, :n_keep]  # visible, in place order
        gather = order[:, :, None].expand(B, n_keep, D)
        h = torch.gather(tokens, 1, gather)
        for blk in self.encoder:
            h = blk(h)
        h = self.decoder_embed(self.encoder_norm(h))
        full = self.mask_token.expand(B, L, D).scatter(1, gather, h) + dec_add
        pred = unpatchify(self._head(self._decode(full, None), layout), layout, Tp)[..., :C]
        target = to_volume(values, layout, layout.hist_pad, layout.fut_pad)
        observed = to_volume(seen.to(values.dtype), layout, layout.hist_pad, layout.fut_pad) > 0
        hidden = unpatchify(draw.hide[:, :, :, None].expand(B, L, C, pv).reshape(B, L, C * pv).to(values.dtype),
                            layout, Tp) > 0
        crop = lambda v: from_volume(v, layout, layout.hist_pad, H + P)  # noqa: E731
        return crop(pred), crop(target), crop(hidden & observed), crop(hidden), draw

    # -- prompt tuning --------------------------------------------------------------------
    def prompt_tuning(self, train_head: bool = False) -> list[str]:
        """Freeze the backbone (patch embeddings, positions, time embeddings, encoder, decoder,
        mask token) and train only the prompt network, plus the prediction head when
        ``train_head``. Returns the names of the parameters left trainable."""
        if self.prompt is None:
            raise UrbanstError("prompt tuning needs a unist with prompts (prompts=True)")
        heads = ("head.", "head_grid.", "head_region.")
        for name, p in self.named_parameters():
            p.requires_grad = name.startswith("prompt.") or (train_head and name.startswith(heads))
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def unfreeze(self) -> None:
        for p in self.parameters():
            p.requires_grad = True

    def parameter_counts(self) -> dict[str, int]:
        """Backbone and prompt-network sizes (the unused grid/region patch embedding and head included)."""
        prompt = sum(p.numel() for p in self.prompt.parameters()) if self.prompt is not None else 0
        return {"backbone": self.num_parameters() - prompt, "prompt": prompt, "total": self.num_parameters()}


# -- channels="separate": one single-attribute volume per attribute (the released code's way) --

_PER_CHANNEL = ("x", "input_mask", "y", "target_mask")


def _inputs_as_window(batch: dict) -> dict:
    """The input window split in two halves that masked reconstruction reads as history and future."""
    x, seen = batch["x"], batch["input_mask"]
    H = x.shape[1]
    if H < 2:
        raise UrbanstError("unist reconstructs inputs of two or more steps; use a longer --history")
    half = H - H // 2
    inputs = {k: v for k, v in batch.items() if k not in ("y", "target_mask", "periodic", "periodic_mask")}
    inputs.update(x=x[:, :half], input_mask=seen[:, :half], y=to_original(batch, x[:, half:]),
                  target_mask=seen[:, half:], time_of_day=batch["time_of_day"][:, :H],
                  day_of_week=batch["day_of_week"][:, :H])
    return inputs


def _fold_channels(batch: dict) -> dict:
    C = batch["x"].shape[-1]
    out = dict(batch)
    for key in _PER_CHANNEL:
        if key in batch:
            out[key] = rearrange(batch[key], "b t n c -> (b c) t n 1")
    for key in ("periodic", "periodic_mask"):
        if key in batch:
            out[key] = rearrange(batch[key], "b k p n c -> (b c) k p n 1")
    for key in ("time_of_day", "day_of_week", "origin"):
        if key in batch:
            out[key] = batch[key].repeat_interleave(C, dim=0)
    for key in ("scale_mean", "scale_std"):
        if key in batch:
            out[key] = rearrange(batch[key], "b c -> (b c) 1")
    return out


def _unfold_channels(values: torch.Tensor, C: int) -> torch.Tensor:
    return rearrange(values, "(b c) p n 1 -> b p n c", c=C)
