"""DCGAN-style convolutional building blocks for the 28×28 image labs (MNIST, Fashion-MNIST); the networks are the students'.

The DCGAN guidelines (Radford et al., 2016), each one a line below:

* no pooling: the generator *upsamples* with strided transposed convolutions, the discriminator
  *downsamples* with strided convolutions;
* batch norm in both networks, except the generator's output and the discriminator's input layer
  (and never in a WGAN-GP critic, whose penalty is per sample: layer norm or nothing there);
* ReLU in the generator, LeakyReLU(0.2) in the discriminator, tanh on the generator's output;
* weights initialised from N(0, 0.02).

Shapes for 28×28 images, with the size formula of a transposed convolution
``out = (in - 1) * stride - 2 * padding + kernel`` (see :func:`transposed_output_size`)::

    generator      z (B, 100) -> view (B, 100, 1, 1)
                   ConvT k7 s1 p0 -> (B, 4c, 7, 7)      (1-1)*1 - 0 + 7 = 7
                   ConvT k4 s2 p1 -> (B, 2c, 14, 14)    (7-1)*2 - 2 + 4 = 14
                   ConvT k4 s2 p1 -> (B, 1, 28, 28)     (14-1)*2 - 2 + 4 = 28, tanh
    discriminator  x (B, 1, 28, 28)
                   Conv k4 s2 p1 -> (B, c, 14, 14)      floor((28 + 2 - 4) / 2) + 1 = 14
                   Conv k4 s2 p1 -> (B, 2c, 7, 7)
                   Conv k3 s2 p1 -> (B, 4c, 4, 4)
                   flatten, Linear(4c*16 -> 1) -> (B, 1), sigmoid: a probability per image
"""
from __future__ import annotations

from enum import Enum
from typing import Optional

from torch import nn


__all__ = [
    "Norm", "up_block", "down_block", "init_dcgan_weights", "transposed_output_size", "conv_output_size",
]


class Norm(str, Enum):
    """Normalisation after a convolution: batch norm (DCGAN), layer norm (WGAN-GP critic), or none."""

    BATCH = "batch"
    LAYER = "layer"
    NONE = "none"


def transposed_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0) -> int:
    """Side of a ConvTranspose2d's output: ``(size - 1) * stride - 2 * padding + kernel + output_padding``."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side of a Conv2d's output: ``floor((size + 2 * padding - kernel) / stride) + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def up_block(in_channels: int, out_channels: int, kernel: int = 4, stride: int = 2, padding: int = 1,
             last: bool = False) -> nn.Sequential:
    """ConvTranspose2d, then BatchNorm + ReLU, or tanh when ``last`` (the image layer)."""
    layers = [nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding, bias=last)]
    layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def down_block(in_channels: int, out_channels: int, kernel: int = 4, stride: int = 2, padding: int = 1,
               norm: Norm = Norm.BATCH, size: Optional[int] = None) -> nn.Sequential:
    """Conv2d, then a normalisation (``norm``) and LeakyReLU(0.2).

    Layer norm normalises each sample over (channels, height, width), so it needs the output's side
    ``size``. Pass ``norm=Norm.NONE`` for the first layer, which sees the image itself.
    """
    norm = Norm(norm)
    layers = [nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=norm is not Norm.BATCH)]
    if norm is Norm.BATCH:
        layers.append(nn.BatchNorm2d(out_channels))
    elif norm is Norm.LAYER:
        if size is None:
            raise ValueError("down_block with layer norm needs the output size (size=...).")
        layers.append(nn.LayerNorm([out_channels, size, size]))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation, for ``model.apply``: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
