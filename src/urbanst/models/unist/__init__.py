"""UniST: masked spatio-temporal autoencoder with knowledge-guided prompts (the ``unist`` zoo model).

Modules: ``config`` (sizes, options), ``masking`` (mask strategies), ``patching`` (volumes,
3-D patches, positions, region graphs), ``layers`` (transformer blocks), ``prompts`` (ST
prompt network), ``model`` (the model), ``geometry`` (windows of other datasets carry their grid or graph).
"""

from urbanst.models.unist.config import SIZES, UniSTConfig
from urbanst.models.unist.model import UniST
from urbanst.models.unist.geometry import SpatialWindows

__all__ = ["SIZES", "SpatialWindows", "UniST", "UniSTConfig"]
