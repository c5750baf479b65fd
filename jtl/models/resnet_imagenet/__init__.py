"""ImageNet ResNet-18/50: the nnx module (`modeling`) and its checkpoint converter (`params`).

Importing the package registers `resnet18` and `resnet50` (jtl.registry discovers this
folder). Inputs are normalised outside the module with the ImageNet mean/std (`normalize`).
`jtl/models/resnet.py` (`resnet`) is another network: a small CIFAR ResNet with GroupNorm.
"""

from jtl.models.resnet_imagenet.modeling import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SIZES,
    ImageNetClassifier,
    ImageNetResNet,
    ResNet18,
    ResNet50,
    normalize,
)
from jtl.models.resnet_imagenet.params import LoadReport, layout, load_pretrained

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SIZES", "ImageNetClassifier", "ImageNetResNet",
           "LoadReport", "ResNet18", "ResNet50", "layout", "load_pretrained", "normalize"]
