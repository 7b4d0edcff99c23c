"""What every model in the zoo shares: a config dataclass, a forward over a batch, save and load.

A model is a plain ``torch.nn.Module``. ``forward(batch)`` returns the prediction for the
task's targets in *scaled* units (``[B, P, N, C]`` for forecasting); the task turns it back
into original units with the scaler that travels with the model.

``save_pretrained(dir)`` writes ``config.json`` (model name, config, library version),
``model.safetensors`` and ``scaler.json``. ``from_pretrained(dir)`` reads them back and
never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from urbanst.data.scalers import StandardScaler
from urbanst.errors import UrbanstError
from urbanst.io import atomic_dir, write_json_atomic

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SCALER_FILE = "scaler.json"


@dataclass
class DataSpec:
    """What a model needs to know about the data it will see."""

    dataset: str
    num_units: int
    num_channels: int
    history: int
    horizon: int
    steps_per_day: int | None = None
    lags: list[str] = field(default_factory=list)  # names of the periodic lags, in batch order
    grid_shape: tuple[int, int] | None = None
    attributes: list[str] = field(default_factory=list)
    # Spatial structure for models that build priors from it (stored by them as buffers, not in config).
    adjacency: np.ndarray | None = field(default=None, repr=False)
    coords: np.ndarray | None = field(default=None, repr=False)


_MODELS: dict[str, type[STModel]] = {}


def register_model(cls: type[STModel]) -> type[STModel]:
    if cls.name in _MODELS:
        raise RuntimeError(f"model {cls.name!r} registered twice")
    _MODELS[cls.name] = cls
    return cls


def model_class(name: str) -> type[STModel]:
    import urbanst.models.zoo  # noqa: F401  (registers every model)

    if name not in _MODELS:
        raise UrbanstError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def model_names() -> list[str]:
    import urbanst.models.zoo  # noqa: F401

    return sorted(_MODELS)


class STModel(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type]
    family: ClassVar[str] = "deep"  # "baseline" models are fit in closed form, not by gradient
    trains_by_gradient: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-3
    unit_agnostic: ClassVar[bool] = False  # True when no weight is tied to a particular unit

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.scaler: StandardScaler | None = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build(cls, spec: DataSpec, **options: Any) -> STModel:
        """A model for data shaped like ``spec``; ``options`` override config fields."""
        model = cls(cls.make_config(spec, **options))
        model.init_from_data(spec)
        return model

    def init_from_data(self, spec: DataSpec) -> None:
        """Set data-derived buffers (e.g. spatial priors from ``spec.adjacency``); they are saved with the weights."""

    def start_finetune(self, spec: DataSpec) -> None:
        """Called when a saved model is trained further on ``spec``'s data (``fit --init``): freeze or reset parts here."""

    @classmethod
    def make_config(cls, spec: DataSpec, **options: Any):
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        base = {k: getattr(spec, k) for k in known if hasattr(spec, k)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UrbanstError(f"model {cls.name!r} has no option {unknown}; its options are {sorted(known)}")
        return cls.config_class(**{**base, **options})

    # -- training -------------------------------------------------------------------------
    def training_loss(self, batch: dict) -> torch.Tensor:
        """Masked MAE in scaled units between the forecast and the scored targets."""
        from urbanst.data.windows import to_scaled
        from urbanst.tasks.losses import masked_mae

        return masked_mae(self(batch), to_scaled(batch, batch["y"]), batch["target_mask"])

    # -- closed-form fitting (baselines) ------------------------------------------------
    def fit_closed_form(self, train_windows) -> None:
        """Fit statistics from the training windows; models trained by gradient do nothing here."""

    # -- parameters ---------------------------------------------------------------------
    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """The tensors ``save_pretrained`` writes; models with a frozen pretrained part leave it out."""
        return {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}

    # -- save and load --------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        from safetensors.torch import save_file

        from urbanst import __version__

        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            meta = {
                "model": self.name,
                "config": dataclasses.asdict(self.config),
                "urbanst_version": __version__,
                **(extra or {}),
            }
            write_json_atomic(tmp / CONFIG_FILE, meta)
            save_file(_dedupe_shared(self.state_to_save()), str(tmp / WEIGHTS_FILE))
            if self.scaler is not None:
                write_json_atomic(tmp / SCALER_FILE, self.scaler.to_dict())
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> STModel:
        meta = read_model_meta(directory)
        model_cls = model_class(meta["model"])
        if cls is not STModel and not issubclass(model_cls, cls):
            raise UrbanstError(f"{directory} holds a {meta['model']!r} model, not a {cls.name!r}")
        try:
            config = model_cls.config_class(**meta["config"])
        except TypeError as err:
            raise UrbanstError(f"{directory}/{CONFIG_FILE} does not fit model {meta['model']!r}: {err}") from None
        model = model_cls(config)
        model.load_weights(Path(directory) / WEIGHTS_FILE)
        scaler_path = Path(directory) / SCALER_FILE
        if scaler_path.is_file():
            model.scaler = StandardScaler.from_dict(_read_json(scaler_path))
        return model

    def load_weights(self, path: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise UrbanstError(f"corrupted or unreadable weights {path}: {err}") from None
        expected = self.state_to_save()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise UrbanstError(f"weights {path} do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for key, tensor in state.items():
            if tensor.shape != expected[key].shape:
                raise UrbanstError(f"weights {path}: {key} has shape {tuple(tensor.shape)}, model expects {tuple(expected[key].shape)}")
        self.load_state_dict(state, strict=False)


def read_model_meta(directory: str | Path) -> dict:
    directory = Path(directory)
    if not directory.is_dir():
        raise UrbanstError(f"model directory not found: {directory}")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        pickles = [p.name for p in directory.glob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}]
        hint = f" (found {pickles}: urbanst loads weights only from safetensors, never from pickles)" if pickles else ""
        raise UrbanstError(f"no {WEIGHTS_FILE} in {directory}{hint}")
    meta = _read_json(directory / CONFIG_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or not isinstance(meta.get("config"), dict):
        raise UrbanstError(f"{directory}/{CONFIG_FILE} is malformed: expected {{'model': name, 'config': {{...}}}}")
    return meta


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UrbanstError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UrbanstError(f"malformed JSON in {path}: {err}") from None


def _dedupe_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory; give each its own copy."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        ptr = tensor.data_ptr()
        out[key] = tensor.clone() if ptr in seen and tensor.numel() else tensor
        seen.add(ptr)
    return out
