"""Datasets: the five MAF tabular sets from the data root and 2-D synthetic densities from a seed.

Import from the modules (`lrsflows.data.splits`, `.tabular`, `.toy2d`, `.download`): this package file stays
light so that the lrsflows-data command starts without importing torch.
"""
