"""Tasks decide what a model sees and what is scored: forecast, impute, classify, pretrain."""
