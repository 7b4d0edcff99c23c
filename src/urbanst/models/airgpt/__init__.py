"""AirGPT: static and wind graphs fused by a gate (:mod:`.encoder`), a weather instruction
(:mod:`.instruction`) and the model with its LM backbone and presets (:mod:`.model`); faithful
explanations of its forecasts are in :mod:`urbanst.evaluation.explain`."""
