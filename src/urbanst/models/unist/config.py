"""UniST's configuration: sizes, patching, channel handling, prompts and training policy.

Sizes (``size``): ``tiny`` and ``small`` are ours, for tests and for CPU budgets;
``middle`` is the released code's ``middle`` (width 128, 6 encoder + 4 decoder blocks,
8 / 4 heads, MLP ratio 2). ``embed_dim``, ``encoder_depth`` ... override a size when set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from urbanst.errors import UrbanstError

# width, encoder blocks, decoder blocks, encoder heads, decoder heads
SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "tiny": (32, 2, 1, 4, 4),
    "small": (64, 4, 2, 4, 4),
    "middle": (128, 6, 4, 8, 4),
}

PROMPT_PARTS = ("spatial_closeness", "spatial_hierarchy", "temporal_closeness", "temporal_period")
PRETRAIN_STRATEGIES = ("random", "tube", "block", "temporal", "attribute")


@dataclass
class UniSTConfig:
    # -- data (filled from the DataSpec) --------------------------------------------------
    num_units: int
    num_channels: int
    history: int
    horizon: int
    steps_per_day: int | None = None
    lags: list[str] = field(default_factory=list)
    grid_shape: list[int] | None = None  # (H, W) of a full grid; None for regions / sensors
    # -- backbone ----------------------------------------------------------------------
    size: str = "tiny"  # the fastest to learn in a CPU budget (nyc_bike, 300 s: tiny 9.17, small 9.61 test MAE)
    embed_dim: int | None = None
    encoder_depth: int | None = None
    decoder_depth: int | None = None
    num_heads: int | None = None
    decoder_heads: int | None = None
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    # -- tokens ------------------------------------------------------------------------
    patch_t: int = 6  # steps per token (grids; the released code uses 2: 3x the tokens, about 3x slower on CPU)
    patch_hw: int = 2  # grid cells per token side (grids only; regions use one unit per token)
    region_patch_t: int | None = 12  # steps per token for region / sensor data (None: patch_t)
    channels: str = "fused"  # "fused": all attributes in one token; "separate": one volume per attribute (the original)
    max_channels: int | None = None  # attribute slots of the patch embedding (None: num_channels)
    pe_dim: int = 16  # Laplacian eigenvectors that place region units
    unit_embedding: bool = False  # a learned embedding per unit of the home dataset (not used for other datasets)
    tod_slots: int = 48  # time-of-day embedding slots (the original's 48 half hours)
    # -- prompts -----------------------------------------------------------------------
    prompts: bool = True
    prompt_parts: list[str] = field(default_factory=lambda: list(PROMPT_PARTS))
    memory_slots: int = 512
    prompt_residual: bool = True  # prompt = memory(query) + query: the exact period values reach the decoder
    # -- training ----------------------------------------------------------------------
    loss: str = "mae"  # forecasting loss on the scored targets: "mae" or "mse"
    anchor: bool = True  # forecasting: predict a correction to seasonal naive (the period the period prompt reads)
    mask_ratio: float = 0.5
    pretrain_strategies: list[str] = field(default_factory=lambda: list(PRETRAIN_STRATEGIES))
    lr: float | None = None  # None: UniST.default_lr
    # -- derived by init_from_data for region data: edges of the stored graph ----------
    num_edges: int = 0

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise UrbanstError(f"unist size must be one of {sorted(SIZES)}, got {self.size!r}")
        if self.grid_shape is not None:
            self.grid_shape = [int(v) for v in self.grid_shape]
            if self.grid_shape[0] * self.grid_shape[1] != self.num_units:
                raise UrbanstError(f"unist: grid {self.grid_shape} does not hold {self.num_units} units")
        if self.channels not in ("fused", "separate"):
            raise UrbanstError(f"unist channels must be 'fused' or 'separate', got {self.channels!r}")
        if self.max_channels is None:
            self.max_channels = self.num_channels if self.channels == "fused" else 1
        if self.channels == "fused" and self.max_channels < self.num_channels:
            raise UrbanstError(f"unist: max_channels={self.max_channels} < the data's {self.num_channels} attributes")
        if self.loss not in ("mae", "mse"):
            raise UrbanstError(f"unist loss must be 'mae' or 'mse', got {self.loss!r}")
        if not 0 < self.mask_ratio < 1:
            raise UrbanstError(f"unist mask_ratio must be in (0, 1), got {self.mask_ratio}")
        from urbanst.models.unist.masking import STRATEGIES

        unknown = sorted(set(self.pretrain_strategies) - set(STRATEGIES))
        if unknown or not self.pretrain_strategies:
            raise UrbanstError(f"unist pretrain_strategies {unknown or '[]'} unknown; choose from {sorted(STRATEGIES)}")
        unknown = sorted(set(self.prompt_parts) - set(PROMPT_PARTS))
        if unknown:
            raise UrbanstError(f"unist prompt_parts {unknown} unknown; choose from {list(PROMPT_PARTS)}")
        for name in ("patch_t", "patch_hw"):
            if getattr(self, name) < 1:
                raise UrbanstError(f"unist {name} must be >= 1")
        self.lags = list(self.lags)
        self.prompt_parts = list(self.prompt_parts)
        self.pretrain_strategies = list(self.pretrain_strategies)

    # -- resolved sizes ------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.embed_dim or SIZES[self.size][0]

    @property
    def depths(self) -> tuple[int, int]:
        _, enc, dec, _, _ = SIZES[self.size]
        return self.encoder_depth or enc, self.decoder_depth or dec

    @property
    def heads(self) -> tuple[int, int]:
        _, _, _, h, dh = SIZES[self.size]
        return self.num_heads or h, self.decoder_heads or dh

    @property
    def slots(self) -> int:
        """Attribute slots of one token."""
        return int(self.max_channels) if self.channels == "fused" else 1

    def time_patch(self, grid: bool) -> int:
        return self.patch_t if grid or self.region_patch_t is None else self.region_patch_t
