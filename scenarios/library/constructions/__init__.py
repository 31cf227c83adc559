"""Hand-built constructions of the literature: Universal-AND, circuits in superposition."""
