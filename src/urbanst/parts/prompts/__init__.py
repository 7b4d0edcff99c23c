"""Prompts: memory pools, prefix tokens, and the instruction text a language model reads."""
