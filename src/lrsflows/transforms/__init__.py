"""Invertible layers: base classes, spline and affine couplings, autoregressive, linear, normalisation, reshape, pointwise."""
