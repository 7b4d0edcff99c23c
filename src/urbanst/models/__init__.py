"""The model zoo: every model is a named preset over shared parts (see DESIGN.md)."""

from urbanst.models.base import STModel, model_class, model_names

__all__ = ["STModel", "model_class", "model_names"]
