"""Write the reference values the check cells compare against, from the solution notebooks' own code.

    python scripts/make_references.py

The functions come from the cells tagged ``export`` in notebooks/solutions/, so the checks can never
drift from the solution: change the solution, rerun this, commit the .npz.
"""
from pathlib import Path

import numpy as np

from labkit.checks import REFERENCES
from labkit.checks import cgan_mnist, cwgan_gp_fashion, dcgan_mnist, gan1d
from labkit.instructor.notebook import load_exports

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"


def gan1d_references() -> dict:
    solution = load_exports(SOLUTIONS / "01_gan_1d.ipynb")
    out, _, D = gan1d.run_d_step(solution.d_step)
    smooth, _, _ = gan1d.run_d_step(solution.d_step, real_label=gan1d.SMOOTH_LABEL)
    g_out, G, _ = gan1d.run_g_step(solution.g_step)
    means = gan1d.run_epoch_means(solution.epoch_means)
    return {
        **{f"epoch_means.{key}": value for key, value in means.items()},
        "d_step.loss_d": out["loss_d"], "d_step.d_real": out["d_real"], "d_step.d_fake": out["d_fake"],
        "d_step.D_after": gan1d.flat_params(D), "d_step.loss_d_smooth": smooth["loss_d"],
        "g_step.loss_g": g_out["loss_g"], "g_step.G_after": gan1d.flat_params(G),
    }


def dcgan_mnist_references() -> dict:
    solution = load_exports(SOLUTIONS / "03_dcgan_mnist.ipynb")
    out, G, D, _ = dcgan_mnist.run_train_step(solution.train_step)
    return {
        **{f"train_step.{key}": value for key, value in out.items()},
        "train_step.D_after": dcgan_mnist.flat_params(D), "train_step.G_after": dcgan_mnist.flat_params(G),
    }


def cwgan_gp_fashion_references() -> dict:
    solution = load_exports(SOLUTIONS / "04_cwgan_gp_fashion.ipynb")
    out, _, C, _ = cwgan_gp_fashion.run_critic_step(solution.critic_step)
    # eps * fake + (1 - eps) * real is as valid an interpolate (eps is symmetric): its values are accepted too
    mix = solution.get_interpolates
    solution.get_interpolates = lambda real, fake: mix(fake, real)
    swapped, _, C_swapped, _ = cwgan_gp_fashion.run_critic_step(solution.critic_step)
    solution.get_interpolates = mix
    g_out, G, _, _ = cwgan_gp_fashion.run_generator_step(solution.generator_step)
    return {
        **{f"critic_step.{key}": value for key, value in out.items()},
        "critic_step.C_after": cwgan_gp_fashion.flat_params(C), "critic_step.gp_swapped": swapped["gp"],
        "critic_step.C_after_swapped": cwgan_gp_fashion.flat_params(C_swapped),
        "generator_step.loss_g": g_out["loss_g"], "generator_step.G_after": cwgan_gp_fashion.flat_params(G),
    }


def cgan_mnist_references() -> dict:
    solution = load_exports(SOLUTIONS / "02_cgan_mnist.ipynb")
    out, G, D, _ = cgan_mnist.run_train_step(solution.train_step)
    reports = {variant: solution.discriminator_report(*cgan_mnist.report_inputs(variant))
               for variant in cgan_mnist.REPORT_VARIANTS}
    return {
        **{f"discriminator_report.{variant}.{key}": report[key] for variant, report in reports.items()
           for key in cgan_mnist.REPORT_KEYS},
        **{f"train_step.{key}": value for key, value in out.items()},
        "train_step.D_after": cgan_mnist.flat_params(D), "train_step.G_after": cgan_mnist.flat_params(G),
    }


def main():
    REFERENCES.mkdir(parents=True, exist_ok=True)
    for name, build in (("gan1d", gan1d_references), ("dcgan_mnist", dcgan_mnist_references),
                        ("cwgan_gp_fashion", cwgan_gp_fashion_references),
                        ("cgan_mnist", cgan_mnist_references)):
        values = {k: np.asarray(v, dtype=np.float64) for k, v in build().items()}
        np.savez(REFERENCES / f"{name}.npz", **values)
        print(f"wrote {REFERENCES / name}.npz: " + ", ".join(f"{k}{list(v.shape) or ''}" for k, v in values.items()))


if __name__ == "__main__":
    main()
