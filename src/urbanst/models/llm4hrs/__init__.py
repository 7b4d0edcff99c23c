"""LLM4HRS: imputation of sparse fields with a language model over time (both directions) and space (see :mod:`.model`)."""

from urbanst.models.llm4hrs.model import LLM4HRS, LLM4HRSConfig

__all__ = ["LLM4HRS", "LLM4HRSConfig"]
