"""Datasets: 2-D synthetic densities (tabular and image loaders follow)."""
