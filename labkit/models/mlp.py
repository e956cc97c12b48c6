"""Fully connected networks: the 1D-GAN lab's small MLPs, and the lecture's FC image GAN (the DCGAN lab's baseline).

The 1D MLPs take a ``data_mean``/``data_std`` pair: the generator's last layer produces
standardised values that a fixed affine map turns back into data units, and the
discriminator standardises its input with the same numbers. With the defaults
(0, 1) nothing is rescaled, which is the course baseline.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..checkpoint import Configurable

__all__ = ["MLPGenerator", "MLPDiscriminator", "FCImageGenerator", "FCImageDiscriminator", "ACTIVATIONS", "make_mlp"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


def make_mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with ``activation`` between them (none after the last)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class MLPGenerator(Configurable):
    """z of shape (B, latent_dim) -> samples of shape (B, 1)."""

    def __init__(self, latent_dim: int = 5, hidden: Sequence[int] = (15,), activation: str = "relu",
                 data_mean: float = 0.0, data_std: float = 1.0):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.net = make_mlp([self.latent_dim, *hidden, 1], activation)
        self.register_buffer("data_mean", torch.tensor(float(data_mean)))
        self.register_buffer("data_std", torch.tensor(float(data_std)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"The generator expects noise of shape (batch, {self.latent_dim}), got {tuple(z.shape)}.")
        return self.net(z) * self.data_std + self.data_mean


class MLPDiscriminator(Configurable):
    """x of shape (B, 1) -> probability that x is real, shape (B, 1)."""

    def __init__(self, hidden: Sequence[int] = (25,), activation: str = "relu",
                 data_mean: float = 0.0, data_std: float = 1.0):
        super().__init__()
        self.net = make_mlp([1, *hidden, 1], activation)
        self.register_buffer("data_mean", torch.tensor(float(data_mean)))
        self.register_buffer("data_std", torch.tensor(float(data_std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != 1:
            raise ValueError(f"The discriminator expects samples of shape (batch, 1), got {tuple(x.shape)}.")
        return torch.sigmoid(self.net((x - self.data_mean) / self.data_std))


class FCImageGenerator(Configurable):
    """The lecture's fully connected GAN generator: z (B, 100) -> 256 -> 512 -> 1024 -> 784 -> (B, 1, 28, 28).

    LeakyReLU(0.2) between layers and tanh at the end: the baseline the DCGAN paper improves on.
    """

    def __init__(self, latent_dim: int = 100, hidden: Sequence[int] = (256, 512, 1024)):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.net = nn.Sequential(make_mlp([self.latent_dim, *hidden, 784], "leaky_relu"), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"The generator expects noise of shape (batch, {self.latent_dim}), got {tuple(z.shape)}.")
        return self.net(z).view(-1, 1, 28, 28)


class FCImageDiscriminator(Configurable):
    """The lecture's fully connected discriminator: (B, 1, 28, 28) -> 784 -> 1024 -> 512 -> 256 -> 1 probability.

    LeakyReLU(0.2) and dropout 0.3 after each hidden layer, sigmoid at the end.
    """

    def __init__(self, hidden: Sequence[int] = (1024, 512, 256), dropout: float = 0.3):
        super().__init__()
        layers, width = [nn.Flatten()], 784
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        self.net = nn.Sequential(*layers, nn.Linear(width, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
