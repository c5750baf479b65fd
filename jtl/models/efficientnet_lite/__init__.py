"""EfficientNet-Lite: the nnx module (`modeling`) and its checkpoint converter (`params`).

Importing the package registers `efficientnet_lite0` (jtl.registry discovers this folder).
Inputs are normalised outside the module: `normalize(pixels)` = (pixels - MEAN_RGB) /
STDDEV_RGB on 0-255 RGB, 127 / 128 for Lite (not the ImageNet mean/std).
"""

from jtl.models.efficientnet_lite.modeling import (
    MEAN_RGB,
    STDDEV_RGB,
    EfficientNetLite,
    EfficientNetLite0,
    ImageNetClassifier,
    normalize,
)
from jtl.models.efficientnet_lite.params import LoadReport, load_pretrained

__all__ = ["MEAN_RGB", "STDDEV_RGB", "EfficientNetLite", "EfficientNetLite0",
           "ImageNetClassifier", "LoadReport", "load_pretrained", "normalize"]
