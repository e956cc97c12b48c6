"""DCGAN-style convolutional building blocks and networks for the 28×28 image labs (MNIST, Fashion-MNIST).

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

import torch
from torch import nn

from ..checkpoint import Configurable

__all__ = [
    "Norm", "up_block", "down_block", "init_dcgan_weights", "transposed_output_size", "conv_output_size",
    "DCGANGenerator", "DCGANDiscriminator",
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


class DCGANGenerator(Configurable):
    """z (B, latent_dim) [, labels (B,)] -> images (B, 1, 28, 28) in [-1, 1].

    ``channels`` is the width ``c`` of the diagram in the module docstring. With ``n_classes > 0`` the
    generator is conditional: the label's embedding (``embed_dim`` numbers, or a one-hot vector when
    ``embed_dim == 0``) is appended to z.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 64, n_classes: int = 0, embed_dim: int = 0):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.n_classes = int(n_classes) or None
        self.embed_dim = int(embed_dim)
        label_dim = 0
        if self.n_classes:
            label_dim = self.embed_dim or self.n_classes
            self.embedding = nn.Embedding(self.n_classes, self.embed_dim) if self.embed_dim else None
        c = int(channels)
        self.net = nn.Sequential(
            up_block(self.latent_dim + label_dim, 4 * c, kernel=7, stride=1, padding=0),  # (B, 4c, 7, 7)
            up_block(4 * c, 2 * c),                                                      # (B, 2c, 14, 14)
            up_block(2 * c, 1, last=True),                                               # (B, 1, 28, 28)
        )
        self.apply(init_dcgan_weights)

    def label_code(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) int labels -> (B, embed_dim) embeddings, or (B, n_classes) one-hot when embed_dim == 0."""
        if self.embed_dim:
            return self.embedding(labels)
        return nn.functional.one_hot(labels, self.n_classes).to(torch.float32)

    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"The generator expects noise of shape (batch, {self.latent_dim}), got {tuple(z.shape)}.")
        if self.n_classes:
            if labels is None:
                raise ValueError("This generator is conditional: call it as G(z, labels).")
            z = torch.cat([z, self.label_code(labels).to(z.dtype)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(Configurable):
    """images (B, 1, 28, 28) [, labels (B,)] -> (B, 1): a probability (``probability=True``) or a raw score.

    A WGAN-GP critic is ``DCGANDiscriminator(norm="layer", probability=False)``. With ``n_classes > 0``
    the label enters as ``n_classes`` extra image channels, each all ones (the label's) or all zeros.
    """

    def __init__(self, channels: int = 64, norm: str = "batch", probability: bool = True, n_classes: int = 0):
        super().__init__()
        norm = Norm(norm)
        self.n_classes = int(n_classes) or None
        self.probability = bool(probability)
        c = int(channels)
        self.features = nn.Sequential(
            down_block(1 + (self.n_classes or 0), c, norm=Norm.NONE),            # (B, c, 14, 14)
            down_block(c, 2 * c, norm=norm, size=7),                             # (B, 2c, 7, 7)
            down_block(2 * c, 4 * c, kernel=3, norm=norm, size=4),               # (B, 4c, 4, 4)
            nn.Flatten(),                                                         # (B, 4c * 16)
        )
        self.head = nn.Linear(4 * c * 16, 1)                                      # (B, 1)
        self.apply(init_dcgan_weights)

    def label_maps(self, labels: torch.Tensor, size: int = 28) -> torch.Tensor:
        """(B,) labels -> (B, n_classes, size, size): channel ``labels[i]`` all ones, the others zeros."""
        one_hot = nn.functional.one_hot(labels, self.n_classes).to(torch.float32)
        return one_hot[:, :, None, None].expand(-1, -1, size, size)

    def logits(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"The discriminator expects images of shape (batch, 1, 28, 28), got {tuple(x.shape)}.")
        if self.n_classes:
            if labels is None:
                raise ValueError("This discriminator is conditional: call it as D(x, labels).")
            x = torch.cat([x, self.label_maps(labels).to(x.dtype)], dim=1)
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        scores = self.logits(x, labels)
        return torch.sigmoid(scores) if self.probability else scores
