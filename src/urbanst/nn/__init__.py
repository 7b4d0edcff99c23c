"""Small neural-network pieces that models compose: masked losses, time and unit embeddings, seasonal anchors.

Nothing here knows a paper, a dataset or a task; larger parts (encoders, prompts, heads) are in
:mod:`urbanst.parts`."""
