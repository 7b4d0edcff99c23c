"""PromptST: shared multi-attribute ST transformer, then per-attribute prompt tuning (see :mod:`.model`)."""

from urbanst.models.promptst.config import PromptSTConfig
from urbanst.models.promptst.model import PromptST

__all__ = ["PromptST", "PromptSTConfig"]
