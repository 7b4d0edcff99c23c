"""Running models: evaluation loops, training on Lightning, and the benchmark protocols."""
