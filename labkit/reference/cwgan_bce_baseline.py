"""The plain-BCE conditional GAN steps lab 04's benchmark trains as the WGAN-GP's baseline (instructor-only: the
critic step is the lab's TODO 6 without the penalty).

Same networks, loop, data and budget as the WGAN-GP; the discriminator is the critic's network, its score read as
a logit. ``benchmarks/cwgan_gp_fashion.py`` puts these in place of the solution's ``critic_step`` and
``generator_step``.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

__all__ = ["bce_critic_step", "bce_generator_step"]


def bce_critic_step(G, C, opt_c, real, labels, z, lambda_gp=None) -> Dict[str, float]:
    """The baseline's discriminator step: BCE on C's scores read as logits, real -> 1 and fake -> 0, no penalty.

    Same signature as the lab's ``critic_step`` so the lab's ``train`` runs it (``lambda_gp`` is ignored).
    """
    opt_c.zero_grad()
    with torch.no_grad():
        fake = G(z, labels)
    logit_real, logit_fake = C(real, labels), C(fake, labels)
    loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
              + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    loss_d.backward()
    opt_c.step()
    return {"loss_c": loss_d.item(), "d_real": torch.sigmoid(logit_real).mean().item(),
            "d_fake": torch.sigmoid(logit_fake).mean().item()}


def bce_generator_step(G, C, opt_g, labels, z) -> Dict[str, float]:
    """The baseline's non-saturating generator step: BCE of C's logits on fresh fakes against 1."""
    opt_g.zero_grad()
    logits = C(G(z, labels), labels)
    loss_g = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    loss_g.backward()
    opt_g.step()
    return {"loss_g": loss_g.item()}
