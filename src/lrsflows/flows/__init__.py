"""Flows (base density + transform) and the builders of the paper's tabular, 2-D and image models."""

from .distributions import BoxUniform, StandardNormal
from .flow import Flow
from .image import build_image_flow
from .tabular import build_tabular_flow

__all__ = ["BoxUniform", "Flow", "StandardNormal", "build_image_flow", "build_tabular_flow"]
