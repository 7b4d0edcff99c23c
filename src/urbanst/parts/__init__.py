"""Parts that presets compose: encoders (data to tokens), prompts, heads. Each knows no paper by name; a preset
(:mod:`urbanst.models`) picks and wires them."""
