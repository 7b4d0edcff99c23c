"""Checkpoints that ship inside the package, named ``pretrained:NAME`` wherever a saved model folder is accepted
(``evaluate``, ``predict``, ``explain``, ``fit --init``, ``benchmark --models``). Each is a saved model folder
under ``urbanst/pretrained/NAME`` with a model card (``card.md``: corpus, steps, wall time, machine, loss curve,
evaluation)."""

from __future__ import annotations

from pathlib import Path

from urbanst.errors import UrbanstError

PREFIX = "pretrained:"
SHIPPED = Path(__file__).resolve().parents[1] / "pretrained"


def shipped() -> list[str]:
    """The names of the checkpoints in the package."""
    if not SHIPPED.is_dir():
        return []
    return sorted(p.name for p in SHIPPED.iterdir() if (p / "model.safetensors").is_file())


def is_pretrained(reference: str | Path) -> bool:
    return str(reference).startswith(PREFIX)


def model_folder(reference: str | Path) -> Path:
    """The folder a model reference names: ``pretrained:NAME`` a shipped checkpoint, anything else a path."""
    if not is_pretrained(reference):
        return Path(reference)
    name = str(reference)[len(PREFIX):]
    if name not in shipped():
        known = ", ".join(PREFIX + n for n in shipped()) or "none in this installation"
        raise UrbanstError(f"no shipped checkpoint {reference!r}; shipped: {known}")
    return SHIPPED / name
