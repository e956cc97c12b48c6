"""The tiny fixed networks the step checks of labs 02-04 run a student's step on (width 2, noise of 8 numbers).

They are inputs of a check, not answers: the width and the noise size are fixed here, so none of them is a lab's
network, and the label enters through private code of these classes. Their parameters are created and
initialised in the order the reference values in ``labkit/data/references/`` were written with, so a change here
needs ``scripts/make_references.py`` rerun.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from ..checkpoint import Configurable
from ..models.conv import Norm, down_block, init_dcgan_weights, up_block

__all__ = ["CASE_LATENT", "N_CLASSES", "dcgan_case_networks", "cgan_case_networks", "cwgan_case_networks"]

CASE_LATENT = 8      # the noise size of every case generator (the labs' generators take 100)
N_CLASSES = 10
_WIDTH = 2           # feature maps of the first layer (the labs' networks have 16-64)


class _CaseGenerator(Configurable):
    """z (B, 8) [, labels] -> (B, 1, 28, 28): three up-blocks; the label, if any, appended to z (embedding or one-hot)."""

    def __init__(self, n_classes: int = 0, embed_dim: int = 0):
        super().__init__()
        self.latent_dim, self.n_classes, self.embed_dim = CASE_LATENT, int(n_classes) or None, int(embed_dim)
        label_dim = (self.embed_dim or self.n_classes) if self.n_classes else 0
        if self.n_classes and self.embed_dim:
            self.embedding = nn.Embedding(self.n_classes, self.embed_dim)
        c = _WIDTH
        self.net = nn.Sequential(
            up_block(CASE_LATENT + label_dim, 4 * c, kernel=7, stride=1, padding=0),
            up_block(4 * c, 2 * c),
            up_block(2 * c, 1, last=True),
        )
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor = None) -> torch.Tensor:
        if self.n_classes:
            if labels is None:
                raise ValueError("This generator is conditional: call it as G(z, labels).")
            code = self.embedding(labels) if self.embed_dim else nn.functional.one_hot(labels, self.n_classes)
            z = torch.cat([z, code.to(z.dtype)], dim=1)
        return self.net(z[:, :, None, None])


class _CaseDiscriminator(Configurable):
    """(B, 1, 28, 28) [, labels] -> (B, 1): three down-blocks and a linear head; the label, if any, as input maps."""

    def __init__(self, norm: Norm = Norm.BATCH, probability: bool = True, n_classes: int = 0):
        super().__init__()
        norm, c = Norm(norm), _WIDTH
        self.n_classes, self.probability = int(n_classes) or None, bool(probability)
        self.features = nn.Sequential(
            down_block(1 + (self.n_classes or 0), c, norm=Norm.NONE),
            down_block(c, 2 * c, norm=norm, size=7),
            down_block(2 * c, 4 * c, kernel=3, norm=norm, size=4),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * c * 16, 1)
        self.apply(init_dcgan_weights)

    def logits(self, x: torch.Tensor, labels: torch.Tensor = None) -> torch.Tensor:
        """The raw score before any sigmoid (a check reads it to tell mistakes apart)."""
        if self.n_classes:
            if labels is None:
                raise ValueError("This discriminator is conditional: call it as D(x, labels).")
            maps = nn.functional.one_hot(labels, self.n_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor, labels: torch.Tensor = None) -> torch.Tensor:
        scores = self.logits(x, labels)
        return torch.sigmoid(scores) if self.probability else scores


def dcgan_case_networks(probability: bool = True) -> Tuple[nn.Module, nn.Module]:
    """Lab 03's case: an unconditional G and a batch-norm D (a sigmoid at its end or logits), from torch's seed."""
    return _CaseGenerator(), _CaseDiscriminator(probability=probability)


def cgan_case_networks(embed_dim: int) -> Tuple[nn.Module, nn.Module]:
    """Lab 02's case: G with a label embedding of ``embed_dim`` numbers, a batch-norm D with label maps."""
    return _CaseGenerator(N_CLASSES, embed_dim), _CaseDiscriminator(n_classes=N_CLASSES)


def cwgan_case_networks() -> Tuple[nn.Module, nn.Module]:
    """Lab 04's case: G with a one-hot label, a layer-norm critic with label maps and no sigmoid."""
    return _CaseGenerator(N_CLASSES), _CaseDiscriminator(Norm.LAYER, probability=False, n_classes=N_CLASSES)
