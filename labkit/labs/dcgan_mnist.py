"""Lab 3 (DCGAN) support: the optional "beyond MNIST" recipe, a 64×64 colour DCGAN on any ImageFolder.

The MNIST part of the lab is written in the notebook itself. This module is its optional last
section: the same DCGAN recipe at 64×64 RGB, with the three changes photos need (3 channels, one more
block per network, a logits loss and a learning-rate schedule), on any folder in torchvision's
``ImageFolder`` layout (``folder/<class>/<image>.jpg``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ..models.conv import Norm, down_block, init_dcgan_weights, up_block
from ..train import EpochLog, WeightAverage, ema_decay

__all__ = ["Generator64", "Discriminator64", "FolderRun", "image_folder_loader", "train_on_folder"]


class Generator64(nn.Module):
    """z (B, latent_dim) -> (B, 3, 64, 64) in [-1, 1]: 1 -> 4 -> 8 -> 16 -> 32 -> 64."""

    def __init__(self, latent_dim: int = 100, channels: int = 64):
        super().__init__()
        self.latent_dim, c = latent_dim, channels
        self.net = nn.Sequential(
            up_block(latent_dim, 8 * c, kernel=4, stride=1, padding=0),   # (B, 8c, 4, 4)
            up_block(8 * c, 4 * c),                                       # (B, 4c, 8, 8)
            up_block(4 * c, 2 * c),                                       # (B, 2c, 16, 16)
            up_block(2 * c, c),                                           # (B, c, 32, 32)
            up_block(c, 3, last=True),                                    # (B, 3, 64, 64), tanh
        )
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator64(nn.Module):
    """(B, 3, 64, 64) -> (B, 1) logits (no sigmoid: trained with BCEWithLogitsLoss)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            down_block(3, c, norm=Norm.NONE),        # (B, c, 32, 32)
            down_block(c, 2 * c),                    # (B, 2c, 16, 16)
            down_block(2 * c, 4 * c),                # (B, 4c, 8, 8)
            down_block(4 * c, 8 * c),                # (B, 8c, 4, 4)
            nn.Flatten(),
            nn.Linear(8 * c * 16, 1),                # (B, 1) logits
        )
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def image_folder_loader(folder, batch_size: int = 64, size: int = 64, seed: int = 0, workers: int = 0):
    """A DataLoader of (B, 3, size, size) images in [-1, 1] from an ImageFolder tree (labels ignored)."""
    from torchvision import datasets as tv_datasets
    from torchvision import transforms

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {folder}: point FOLDER at a folder of sub-folders of images.")
    transform = transforms.Compose([
        transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    try:
        data = tv_datasets.ImageFolder(str(folder), transform=transform)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{folder} has no images in sub-folders (ImageFolder layout: "
                                f"{folder}/<class>/<image>.jpg): {exc}") from None
    return torch.utils.data.DataLoader(data, batch_size=min(batch_size, len(data)), shuffle=True, drop_last=True,
                                       num_workers=workers, generator=torch.Generator().manual_seed(seed))


@dataclass
class FolderRun:
    generator: nn.Module               # the EMA generator, in eval mode
    history: Dict[str, List[float]]    # epoch means of loss_d, loss_g
    samples: np.ndarray                # (16, 64, 64, 3) float32 in [0, 1]
    path: Optional[Path] = None        # the saved generator, when out_dir was given


def train_on_folder(folder, epochs: int = 25, batch_size: int = 64, lr: float = 2e-4, channels: int = 64,
                    out_dir=None, device="cpu", seed: int = 0) -> FolderRun:
    """Train a 64×64 DCGAN on ``folder`` with a logits loss and a cosine learning-rate schedule."""
    from ..checkpoint import saveModel

    torch.manual_seed(seed)
    loader = image_folder_loader(folder, batch_size=batch_size, seed=seed)
    G, D = Generator64(channels=channels).to(device), Discriminator64(channels=channels).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    steps = epochs * len(loader)
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) for opt in (opt_g, opt_d)]
    criterion = nn.BCEWithLogitsLoss()  # sigmoid + BCE in one numerically stable step
    ema, log, history = WeightAverage(G, ema_decay(steps)), EpochLog(), {}
    for _ in range(epochs):
        for real, _ in loader:
            real = real.to(device)                                       # (B, 3, 64, 64)
            z = torch.randn(len(real), G.latent_dim, device=device)
            opt_d.zero_grad()
            fake = G(z)
            s_real, s_fake = D(real), D(fake.detach())                  # (B, 1) logits
            loss_d = criterion(s_real, torch.ones_like(s_real)) + criterion(s_fake, torch.zeros_like(s_fake))
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            s = D(fake)
            loss_g = criterion(s, torch.ones_like(s))
            loss_g.backward()
            opt_g.step()
            for schedule in schedules:
                schedule.step()
            ema.update(G)
            log.add({"loss_d": loss_d.item(), "loss_g": loss_g.item()})
        history = log.end_epoch(history)
    G_ema = ema.model.eval()
    with torch.no_grad():
        x = G_ema(torch.randn(16, G.latent_dim, device=device, generator=None))
    samples = ((x.permute(0, 2, 3, 1) + 1) / 2).clamp(0, 1).cpu().numpy().astype(np.float32)
    path = None
    if out_dir is not None:
        path = saveModel(G_ema, Path(out_dir) / "dcgan64_folder.pt", init_args={"latent_dim": 100, "channels": channels},
                         epochs=epochs, folder=str(folder))
    return FolderRun(G_ema, history, samples, path)
