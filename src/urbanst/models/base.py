"""What every model in the zoo shares: a config dataclass, a forward over a batch, save and load.

A model is a plain ``torch.nn.Module``. ``forward(batch)`` returns a
:class:`~urbanst.contract.ModelOutput` whose ``prediction`` covers the task's targets in *scaled*
units (``[B, P, N, C]`` for forecasting), or event *logits* in the classify task. The task computes
the loss from it and turns it back into original units with the scaler that travels with the model.
A model that can rebuild hidden inputs (``reconstructs``) also has ``reconstruct(batch, span)``:
masked pre-training and test-time adaptation train it through that.

``save_pretrained(dir)`` writes ``config.json`` (model name, config, library version),
``model.safetensors`` and ``scaler.json``. ``from_pretrained(dir)`` reads them back and
never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from urbanst.contract import DataSpec, ModelOutput
from urbanst.data.scalers import StandardScaler
from urbanst.errors import UrbanstError
from urbanst.io import atomic_dir, write_json_atomic
from urbanst.models.config import check_field_types
from urbanst.models.pretrained import model_folder
from urbanst.models.registry import model_class

CONFIG_FILE = "config.json"
_SAVED_HINT = "pass a folder written by save_pretrained (`urbanst fit --output OUT` saves the model in OUT/model)"
WEIGHTS_FILE = "model.safetensors"
SCALER_FILE = "scaler.json"


PRESETS = ("cpu", "paper")


@dataclass(frozen=True)
class Stage:
    """One stage of a model's training: masked pre-training (``pretrain``) or the task's own loss, its share of
    the time budget, and what the model does before it (``start``: freeze parts, switch prompts on)."""

    name: str
    pretrain: bool = False
    share: float = 1.0
    start: Callable[[], object] | None = None


class STModel(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type]
    family: ClassVar[str] = "deep"  # "baseline" models are fit in closed form, not by gradient
    trains_by_gradient: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-3
    unit_agnostic: ClassVar[bool] = False  # True when no weight is tied to a particular unit
    tasks: ClassVar[tuple[str, ...]] = ("forecast",)  # the tasks it can serve; more than one: a config field ``task``
    reconstructs: ClassVar[bool] = False  # has ``reconstruct``: can be pre-trained and adapted at test time
    groups: ClassVar[dict[str, tuple[str, ...]]] = {}  # named parameter groups beyond one per part (train_only)
    # config values of each preset: "paper" as the paper and its released code, "cpu" sized for CPU budgets
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.scaler: StandardScaler | None = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build(cls, spec: DataSpec, preset: str | None = None, **options: Any) -> STModel:
        """A model for data shaped like ``spec`` at ``preset`` (default ``cpu``); ``options`` override config fields."""
        config = cls.make_config(spec, preset, **options)
        if not options:
            model = cls(config)
        else:  # a value of the right type may still be out of range (a negative width, a dropout of 2)
            model = _construct(cls, config, f"options {options}")
        model.init_from_data(spec)
        return model

    def init_from_data(self, spec: DataSpec) -> None:
        """Set data-derived buffers (e.g. spatial priors from ``spec.adjacency``); they are saved with the weights."""

    @classmethod
    def build_for_pretraining(cls, specs: list[DataSpec], preset: str | None = None, **options: Any) -> STModel:
        """One model for masked pre-training over datasets shaped like ``specs`` (the first is its home)."""
        channels = sorted({spec.num_channels for spec in specs})
        if len(channels) > 1:
            raise UrbanstError(f"{cls.name!r} needs the same number of channels in every dataset; got {channels}")
        return cls.build(specs[0], preset, **options)

    def pretraining_windows(self, windows, spec: DataSpec):
        """The window set of one pre-training dataset as this model wants to read it (e.g. with its geometry)."""
        return windows

    def start_finetune(self, spec: DataSpec) -> None:
        """Called when a saved model is trained further on ``spec``'s data (``fit --init``): freeze or reset parts here."""

    def set_target(self, spec: DataSpec) -> None:
        """Called before the model predicts on ``spec``'s data, which may be another city than it was trained on
        (zero-shot): models whose inputs describe the data (an instruction naming the city) update them here.
        Nothing is learned and nothing saved changes."""

    @classmethod
    def make_config(cls, spec: DataSpec, preset: str | None = None, **options: Any):
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        base = {k: getattr(spec, k) for k in known if hasattr(spec, k)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UrbanstError(f"model {cls.name!r} has no option {unknown}; its options are {sorted(known)}")
        check_field_types(cls.config_class, options, f"model {cls.name!r} option")
        if preset not in (None, *PRESETS):
            raise UrbanstError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
        chosen = cls.presets.get(preset or "cpu", {})
        if cls.presets:
            base["preset"] = preset or "cpu"
        return cls.config_class(**{**base, **chosen, **options})

    # -- what it can do ---------------------------------------------------------------------
    @property
    def task(self) -> str:
        """The task its head serves: a model of several tasks holds the one it was built for in ``config.task``."""
        return self.config.task if len(self.tasks) > 1 else self.tasks[0]

    @property
    def preset(self) -> str | None:
        """The preset its config was built from (None for a model without presets: the baselines)."""
        return self.config.preset if self.presets else None

    @property
    def channel_agnostic(self) -> bool:
        """True when one set of weights reads any number of channels (each its own series)."""
        return False

    @property
    def context_steps(self) -> int:
        """Steps before the origin it reads beyond the history (batches then carry ``context``); 0 for most."""
        return 0

    @property
    def correction_of(self) -> str | None:
        """The baseline whose forecast this model corrects (a learned correction added to it), or None."""
        return None

    def stages(self) -> list[Stage]:
        """How it trains, in order; one stage of the task's loss unless the paper says otherwise."""
        return [Stage("train")]

    def reconstruct(self, batch: dict, span: str = "inputs") -> ModelOutput:
        """Masked reconstruction (models with ``reconstructs``): hide a share of what the batch shows, rebuild it,
        and return the rebuilt values with ``target`` and ``scored`` set. ``span="inputs"`` reads the inputs
        only, never a target (test-time adaptation); ``"window"`` the whole window, targets included
        (pre-training on training data)."""
        raise UrbanstError(f"model {self.name!r} cannot rebuild hidden inputs (no masked reconstruction)")

    # -- closed-form fitting (baselines) ------------------------------------------------
    def fit_closed_form(self, train_windows) -> None:
        """Fit statistics from the training windows; models trained by gradient do nothing here."""

    # -- parameters ---------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[str]]:
        """Named groups of parameter names (a name ending in ``.`` is a prefix) for :meth:`train_only`: each part
        by its attribute name, the preset's own ``groups`` (e.g. ``prompts``, ``head``), and every group of its
        language model under ``lm.`` (``lm.norms``, ``lm.attention.1``...; see
        :func:`urbanst.backbones.freezing.parameter_groups`)."""
        from urbanst.backbones import Backbone, parameter_groups

        groups = {name: [f"{name}." if isinstance(child, nn.Module) else name]
                  for name, child in [*self.named_children(), *self.named_parameters(recurse=False)]}
        groups.update({name: list(prefixes) for name, prefixes in self.groups.items()})
        for name, module in self.named_children():
            if isinstance(module, Backbone):
                groups.update({f"lm.{g}": [f"{name}.{m}" for m in members] for g, members in parameter_groups(module).items()})
        return groups

    def train_only(self, groups: list[str]) -> list[str]:
        """Freeze every parameter but those of the named ``groups``; returns the names left to train."""
        from urbanst.nn.freezing import train_only

        try:
            return train_only(self, self.parameter_groups(), groups)
        except ValueError as err:
            raise UrbanstError(f"model {self.name!r}: {err}") from None

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """The tensors ``save_pretrained`` writes: all of the model's own, and of a pretrained language model only
        what its freezing policy trains (the rest is rebuilt from the checkpoint its config names)."""
        from urbanst.backbones import state_to_save

        return state_to_save(self)

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
        """A saved model from its folder, or a shipped checkpoint named ``pretrained:NAME``."""
        directory = model_folder(directory)
        meta = read_model_meta(directory)
        model_cls = model_class(meta["model"])
        if cls is not STModel and not issubclass(model_cls, cls):
            raise UrbanstError(f"{directory} holds a {meta['model']!r} model, not a {cls.name!r}")
        where = f"{directory}/{CONFIG_FILE} does not fit model {meta['model']!r}"
        check_field_types(model_cls.config_class, meta["config"], f"{where}:")
        try:
            config = model_cls.config_class(**meta["config"])
        except (TypeError, UrbanstError) as err:
            raise UrbanstError(f"{where}: {err}") from None
        model = _construct(model_cls, config, f"{directory}/{CONFIG_FILE}")
        model.load_weights(Path(directory) / WEIGHTS_FILE)
        scaler_path = Path(directory) / SCALER_FILE
        if scaler_path.is_file():
            try:
                model.scaler = StandardScaler.from_dict(_read_json(scaler_path))
            except UrbanstError as err:
                raise UrbanstError(f"damaged {scaler_path}: {err}; save the model again") from None
            channels = getattr(config, "num_channels", None)
            if isinstance(channels, int) and model.scaler.mean.shape != (channels,):
                raise UrbanstError(
                    f"damaged {scaler_path}: {model.scaler.mean.size} channel statistics for a model of {channels} "
                    "channels; save the model again"
                )
        return model

    def load_weights(self, path: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise UrbanstError(f"corrupted or unreadable weights {path}: {err}; save or train the model again") from None
        expected = self.state_to_save()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise UrbanstError(f"weights {path} do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for key, tensor in state.items():
            if tensor.shape != expected[key].shape:
                raise UrbanstError(f"weights {path}: {key} has shape {tuple(tensor.shape)}, model expects {tuple(expected[key].shape)}")
        self.load_state_dict(state, strict=False)


def _construct(model_cls: type[STModel], config, source: str) -> STModel:
    """``model_cls(config)`` for a config read from a file or given by the user: a value the model cannot be built
    with (a negative width, a dropout of 2) is the user's to fix, so it ends in an UrbanstError naming it."""
    try:
        return model_cls(config)
    except UrbanstError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError, IndexError, KeyError, ZeroDivisionError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UrbanstError(
            f"cannot build model {model_cls.name!r} from {source}: {type(err).__name__}: {detail}"[:500]
        ) from None


def read_model_meta(directory: str | Path) -> dict:
    directory = model_folder(directory)
    if not directory.is_dir():
        raise UrbanstError(f"model directory not found: {directory}; {_SAVED_HINT}")
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        pickles = [p.name for p in directory.glob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}]
        hint = f" (found {pickles}: urbanst loads weights only from safetensors, never from pickles)" if pickles else ""
        raise UrbanstError(f"no {WEIGHTS_FILE} in {directory}{hint}; {_SAVED_HINT}")
    meta = _read_json(directory / CONFIG_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or not isinstance(meta.get("config"), dict):
        raise UrbanstError(f"{directory}/{CONFIG_FILE} is malformed: expected {{'model': name, 'config': {{...}}}}")
    return meta


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UrbanstError(f"file not found: {path}; the model folder is incomplete: save the model again") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UrbanstError(f"malformed JSON in {path}: {err}; the file is damaged: save the model again") from None


def _dedupe_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory; give each its own copy."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        ptr = tensor.data_ptr()
        out[key] = tensor.clone() if ptr in seen and tensor.numel() else tensor
        seen.add(ptr)
    return out
