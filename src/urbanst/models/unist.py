"""UniST (Yuan et al., KDD 2024): a masked spatio-temporal autoencoder; forecasting = reconstructing the future.

Composition: 3-D patch tokens of any grid or region graph (:mod:`urbanst.parts.encoders.patches`), a
transformer encoder over the visible tokens and a decoder over all of them, hidden ones replaced by a mask
token (:class:`urbanst.nn.attention.Transformer`), knowledge-guided memory-pool prompts added to the future
decoder tokens only (:mod:`urbanst.parts.prompts.memory`), and an MLP head turning each token back into its
patch's values. Masked reconstruction draws one mask strategy per batch (:mod:`urbanst.parts.token_masks`).

Presets (docs/design.md lists each departure from the paper): ``paper`` is the release's configuration: size
``middle`` (width 128, 6 + 4 blocks, 8 / 4 heads, MLP ratio 2), tokens of 2 steps x 2 x 2 cells on grids (and,
ours, 2 steps x one unit on region graphs), one volume per attribute, the prompt is the memory read-out, MSE,
learning rate 3e-4, the release's four mask strategies. ``cpu``, the config's defaults, departs for CPU budgets,
each an option: attributes fused into one token (``channels``), 6-step time patches on grids and 12-step on
regions, residual prompts (``prompt_residual``), an ``anchor`` on seasonal naive (the output layer starts at
zero; masked pre-training is not anchored, test-time adaptation is), size ``tiny`` (``tiny`` and ``small`` are ours), masked MAE.

Nothing in the weights depends on the units unless ``unit_embedding``: the home dataset's geometry is kept as
buffers, batches of other datasets carry theirs (``SpatialWindows``), ``attach(spec)`` moves the model home.
Stages (:meth:`UniST.stages`): masked pre-training (``reconstruct(batch, "window")``, MSE on the hidden observed
entries, no prompts), then prompt tuning (:meth:`UniST.start_prompt_tuning`: the prompt network and the head
train on the task's loss; the release freezes nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from urbanst.contract import DataSpec, ModelOutput
from urbanst.errors import UrbanstError, require
from urbanst.models.base import Stage, STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.anchors import input_anchor, seasonal_anchor
from urbanst.nn.attention import Transformer, gelu_linear, linear, xavier_init
from urbanst.nn.window_norm import normalise, window_stats
from urbanst.parts.encoders.patches import PatchTokens, fold_channels, spread, unfold_channels, unpatch
from urbanst.parts.encoders.patches_geometry import SpatialWindows
from urbanst.parts.heads import start_at_zero
from urbanst.parts.prompts.memory import PRIORS, MemoryPrompts
from urbanst.parts.token_masks import STRATEGIES, draw_for_batch, inputs_window, whole_window

__all__ = ["SIZES", "SpatialWindows", "UniST", "UniSTConfig"]

SIZES = {"tiny": (32, 2, 1, 4, 4), "small": (64, 4, 2, 4, 4), "middle": (128, 6, 4, 8, 4)}  # width, blocks, heads
PRETRAIN_SHARE = 0.5  # of the time budget, when a model trains both stages (see UniST.stages)


@dataclass
class UniSTConfig(SpecConfig):
    preset: Literal["cpu", "paper"] = "cpu"
    grid_shape: list[int] | None = None  # (H, W) of a full grid; None for regions / sensors
    size: Literal["tiny", "small", "middle"] = "tiny"  # the fastest to learn on CPU (nyc_bike, 300 s: tiny 9.17, small 9.61)
    embed_dim: int | None = None  # these five override the size's when set
    encoder_depth: int | None = None
    decoder_depth: int | None = None
    num_heads: int | None = None
    decoder_heads: int | None = None
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    patch_t: int = 6  # steps per token (grids; the release: 2, 3x the tokens, about 3x slower on CPU)
    patch_hw: int = 2  # grid cells per token side (grids only; regions use one unit per token)
    region_patch_t: int | None = 12  # steps per token for region / sensor data (None: patch_t)
    channels: Literal["fused", "separate"] = "fused"  # all attributes in one token, or one volume per attribute
    max_channels: int | None = None  # attribute slots of the patch embedding (None: num_channels)
    pe_dim: int = 16  # Laplacian eigenvectors that place region units
    unit_embedding: bool = False  # a learned embedding per unit of the home dataset (not used for others)
    tod_slots: int = 48  # time-of-day embedding slots (the release's 48 half hours)
    prompts: bool = True
    prompt_parts: list[Literal[PRIORS]] = field(default_factory=lambda: list(PRIORS))
    memory_slots: int = 512
    prompt_residual: bool = True  # prompt = memory(query) + query: the exact period values reach the decoder
    loss: Literal["mae", "mse"] = "mae"  # forecasting loss on the scored targets
    anchor: bool = True  # forecasting: a correction to seasonal naive (the period the period prompt reads)
    window_norm: bool = False  # each series read in the units of its own input window (nn/window_norm.py)
    mask_ratio: float = 0.5
    # drawn per batch in pre-training: the release's four, and hiding whole attributes (multi-attribute data)
    pretrain_strategies: list[Literal[STRATEGIES]] = field(default_factory=lambda: ["random", "tube", "block", "temporal",
                                                                                     "attribute"])
    lr: float | None = None  # None: UniST.default_lr
    num_edges: int = 0  # of the home region graph, set by init_from_data

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_channels is None:
            self.max_channels = self.num_channels if self.channels == "fused" else 1
        grid = self.grid_shape
        require(grid is None or grid[0] * grid[1] == self.num_units, f"unist: grid {grid} does not hold {self.num_units} units")
        require(self.channels == "separate" or self.max_channels >= self.num_channels,
                f"unist: max_channels={self.max_channels} < the data's {self.num_channels} attributes")
        require(0 < self.mask_ratio < 1, f"unist mask_ratio must be in (0, 1), got {self.mask_ratio}")
        require(bool(self.pretrain_strategies), f"unist pretrain_strategies: choose from {list(STRATEGIES)}")
        require(min(self.patch_t, self.patch_hw) >= 1, "unist patch_t and patch_hw must be >= 1")

    @property
    def dims(self) -> tuple[int, int, int, int, int]:
        """Width, encoder and decoder blocks, encoder and decoder heads: the size's, each overridden when set."""
        given = (self.embed_dim, self.encoder_depth, self.decoder_depth, self.num_heads, self.decoder_heads)
        return tuple(g or s for g, s in zip(given, SIZES[self.size]))

    @property
    def slots(self) -> int:
        """Attribute slots of one token."""
        return int(self.max_channels) if self.channels == "fused" else 1


class UniST(STModel):
    """UniST: 3-D patch tokens in a masked ST autoencoder with knowledge-guided prompts; any grid or graph."""

    name = "unist"
    config_class = UniSTConfig
    default_lr = 1e-3
    reconstructs = True
    groups = {"head": ("head.", "head_grid.", "head_region.")}
    presets = {"cpu": {}, "paper": dict(size="middle", patch_t=2, region_patch_t=2, channels="separate", lr=3e-4,
                                        prompt_residual=False, anchor=False, loss="mse",
                                        pretrain_strategies=["random", "tube", "block", "temporal"])}

    def __init__(self, config: UniSTConfig):
        super().__init__(config)
        c = config
        D, encoder_depth, decoder_depth, heads, decoder_heads = c.dims
        pt, p, rt = c.patch_t, c.patch_hw, c.region_patch_t or c.patch_t
        self.tokens = PatchTokens(D, c.slots, pt, p, rt, c.tod_slots, c.pe_dim, c.num_units, c.grid_shape, c.num_edges,
                                  c.unit_embedding)
        self.encoder = Transformer(encoder_depth, D, heads, c.mlp_ratio, c.dropout)
        self.decoder_embed = nn.Linear(D, D)
        self.mask_token = nn.Parameter(torch.zeros(D))
        self.decoder = Transformer(decoder_depth, D, decoder_heads, c.mlp_ratio, c.dropout)
        self.head = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D), nn.GELU())
        self.head_grid = nn.Linear(D, c.slots * pt * p * p)
        self.head_region = nn.Linear(D, c.slots * rt)
        self.prompt = (MemoryPrompts(D, c.history, c.slots, c.memory_slots, c.prompt_parts, residual=c.prompt_residual)
                       if c.prompts and c.prompt_parts else None)
        xavier_init(self)
        self.tokens.reset_parameters()
        nn.init.normal_(self.mask_token, std=0.02)
        if c.anchor:  # forecasting starts exactly at seasonal naive
            start_at_zero(self.head_grid), start_at_zero(self.head_region)
        if self.prompt is not None:
            self.prompt.reset_memory()
        if c.lr:
            self.default_lr = c.lr
        self.pretrained = False  # loaded from a pre-trained model to fine-tune (start_finetune)

    # -- the home dataset -------------------------------------------------------------------
    def init_from_data(self, spec: DataSpec) -> None:
        """Derive the region graph (positions, neighbour operator) of ``spec``'s units; grids need nothing."""
        graph = self.tokens.set_home(spec)
        if graph is not None:
            self.config.num_edges = int(graph.edge_weight.numel())

    def attach(self, spec: DataSpec) -> UniST:
        """Make ``spec``'s dataset the model's home (zero-shot / fine-tuning on other units); weights are kept."""
        if self.config.channels == "fused" and spec.num_channels > self.config.slots:
            raise UrbanstError(f"unist has {self.config.slots} attribute slots; {spec.dataset!r} has {spec.num_channels}")
        self.config.move_to(spec)
        self.init_from_data(spec)
        return self

    @property
    def unit_agnostic(self) -> bool:  # no weight is tied to a unit unless it has unit embeddings
        return not self.config.unit_embedding

    @property
    def channel_agnostic(self) -> bool:  # one volume per attribute reads any number of them
        return self.config.channels == "separate"

    def set_target(self, spec: DataSpec) -> None:
        """Zero-shot on other units: the target becomes the home (its grid or region graph); no weight changes."""
        if not self.config.fits(spec):
            self.attach(spec)

    def start_finetune(self, spec: DataSpec) -> None:
        """``fit --init``: move to the target's units and start prompt tuning (the only stage left to train)."""
        self.set_target(spec)
        self.pretrained = True
        self.start_prompt_tuning()

    @property
    def correction_of(self) -> str | None:
        return "seasonal naive" if self.config.anchor else None

    def stages(self) -> list[Stage]:
        """Masked pre-training on the training windows (every weight trains), then prompt tuning, as the release
        pre-trains, then prompt-tunes; a model loaded to fine-tune (``fit --init``) only prompt-tunes. Half of the
        budget each: on nyc_bike (preset cpu, 120 s, one thread of a shared machine) pre-training 25 / 50 / 75 %
        of it gave test MAE 10.22 / 10.09 / 10.49."""
        name = "prompt_tuning" if self.prompt is not None else "forecast"
        if self.pretrained:
            return [Stage(name)]
        return [Stage("pretrain", pretrain=True, share=PRETRAIN_SHARE),
                Stage(name, share=1 - PRETRAIN_SHARE, start=self.start_prompt_tuning)]

    @classmethod
    def build_for_pretraining(cls, specs: list[DataSpec], **options) -> UniST:
        """Attribute slots for the dataset with the most attributes; datasets with fewer leave slots empty."""
        if options.get("channels", "fused") == "fused":
            options.setdefault("max_channels", max(spec.num_channels for spec in specs))
        return cls.build(specs[0], **options)

    def pretraining_windows(self, windows, spec: DataSpec):
        return windows if self.config.fits(spec) else SpatialWindows(windows, spec, self.config.pe_dim)

    # -- forecasting ------------------------------------------------------------------------
    def forward(self, batch: dict) -> ModelOutput:
        """The scaled forecast ``[B, P, N, C]``: the future tokens are masked and reconstructed."""
        if self.config.channels == "separate":  # one single-attribute window per attribute, as the release
            forecast = unfold_channels(self._forecast(fold_channels(batch)), batch["x"].shape[-1])
        else:
            forecast = self._forecast(batch)
        return ModelOutput(forecast, loss=self.config.loss)

    def _forecast(self, batch: dict, use_prompts: bool = True) -> torch.Tensor:
        if not self.config.window_norm:
            return self._forecast_scaled(batch, use_prompts)
        loc, scale = window_stats(batch["x"], batch["input_mask"])
        return self._forecast_scaled(normalise(batch, loc, scale), use_prompts) * scale + loc

    def _forecast_scaled(self, batch: dict, use_prompts: bool = True) -> torch.Tensor:
        c, x = self.config, batch["x"]
        B, H, N, C = x.shape
        P = batch["y"].shape[1] if "y" in batch else c.horizon
        layout, graph, home = self.tokens.geometry(batch, H, P)
        past, future = layout.Th * layout.S, layout.Tf * layout.S
        enc_add, dec_add = self.tokens.positions(batch, layout, graph, H + P, home)
        patches = self.tokens.patches(x, batch["input_mask"], layout, layout.hist_pad, 0)
        h = self.encoder(self.tokens.embed(patches, layout) + enc_add[:, :past])
        queries = self.mask_token.expand(B, future, -1) + dec_add[:, past:]
        if use_prompts and self.prompt is not None:
            recent = self.tokens.steps(batch, patches, h, layout) if self.prompt.reads_steps else None
            period = self.tokens.periodic(batch, layout) if self.prompt.reads_period else None
            queries = queries + self.prompt(batch, layout, recent, period, graph)
        tokens = torch.cat([linear(h, self.decoder_embed) + dec_add[:, :past], queries], dim=1)
        forecast = unpatch(self._head(self.decoder(tokens, queries=future), layout), layout, 0, P)[..., :C]
        return forecast + seasonal_anchor(batch, c.lags, P) if c.anchor else forecast

    def _head(self, tokens: torch.Tensor, layout) -> torch.Tensor:
        first, _, second, _ = self.head  # Linear, GELU, Linear, GELU; then the output layer of the layout
        hidden = gelu_linear(linear(tokens, first), second)
        return gelu_linear(hidden, self.head_grid if layout.grid else self.head_region)

    # -- masked reconstruction and prompt tuning --------------------------------------------
    def reconstruct(self, batch: dict, span: str = "inputs", strategy: str | None = None) -> ModelOutput:
        """Masked reconstruction without prompts, in the forecasting token layout: ``span="window"`` hides tokens
        anywhere in the window, targets included (pre-training: the head rebuilds values); ``"inputs"`` hides
        tokens of the history only, the future tokens stay mask tokens as in a forecast, and rebuilds the inputs
        (test-time adaptation: never a target), as an anchored forecast does: seasonal naive of each input step
        plus the decoded correction, so adapting teaches the head what it does in a forecast. On region data the
        block strategy hides a neighbourhood of the region graph."""
        if self.config.channels == "separate":
            batch = fold_channels(batch)
        c, H = self.config, batch["x"].shape[1]
        P = batch["time_of_day"].shape[1] - H
        values, seen = whole_window(batch) if span == "window" else inputs_window(batch, P)
        loc, scale = window_stats(batch["x"], batch["input_mask"]) if c.window_norm else (0.0, 1.0)
        B, T, N, C = values.shape
        layout, graph, home = self.tokens.geometry(batch, H, P)
        draw = draw_for_batch(batch, c.pretrain_strategies, layout.Tp, layout.S, c.mask_ratio, self.training, strategy,
                              None if graph is None else graph.edge_index, None if span == "window" else layout.Th)
        patches = self.tokens.patches(torch.where(seen, (values - loc) / scale, values), seen, layout, layout.hist_pad,
                                      layout.fut_pad, hide=draw.hide)
        enc_add, dec_add = self.tokens.positions(batch, layout, graph, T, home)
        visible = draw.visible(self.mask_token.shape[0])
        h = self.encoder(torch.gather(self.tokens.embed(patches, layout) + enc_add, 1, visible))
        h = linear(h, self.decoder_embed)
        tokens = self.mask_token.expand(B, layout.Tp * layout.S, -1).scatter(1, visible, h) + dec_add
        steps = T if span == "window" else H
        prediction = unpatch(self._head(self.decoder(tokens), layout), layout, layout.hist_pad, steps)[..., :C]
        if span == "inputs" and c.anchor:  # the head corrects seasonal naive, as in a forecast (test-time adaptation)
            prediction = prediction + (input_anchor(batch, c.lags) - loc) / scale
        prediction = prediction * scale + loc
        scored = spread(draw.hide, layout, layout.hist_pad, steps) & seen[:, :steps]
        return ModelOutput(prediction, loss="mse", target=values[:, :steps], scored=scored)

    def start_prompt_tuning(self) -> None:
        """The second stage: the prompt network and the head train (without prompts: every weight trains). An
        anchored output layer starts at zero again: it rebuilt values in pre-training, it corrects seasonal naive
        in a forecast."""
        if self.prompt is not None:
            self.prompt_tuning(train_head=True)
        if self.config.anchor:
            start_at_zero(self.head_grid), start_at_zero(self.head_region)

    def prompt_tuning(self, train_head: bool = False) -> list[str]:
        """Freeze all but the prompt network (and the head, with ``train_head``); returns the names left to train."""
        if self.prompt is None:
            raise UrbanstError("prompt tuning needs a unist with prompts (prompts=True)")
        return self.train_only(["prompt", "head"] if train_head else ["prompt"])
