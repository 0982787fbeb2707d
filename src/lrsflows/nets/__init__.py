"""Conditioner networks: residual MLP, residual MADE and convolutional residual net."""

from .made import MADE
from .residual import ConvResidualNet, ResidualNet

__all__ = ["MADE", "ConvResidualNet", "ResidualNet"]
