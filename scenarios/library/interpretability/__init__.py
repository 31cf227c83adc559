"""Ground truth for interpretability methods: baselines of the export-and-score benchmark."""
