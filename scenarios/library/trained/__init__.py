"""Trained networks beside the hand-built ones."""
