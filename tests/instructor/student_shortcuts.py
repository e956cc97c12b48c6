"""Run inside the students' distribution (only it on sys.path): try to pass every TODO check of labs 02-04 with
what that distribution ships, and print one JSON line: the shortcuts that passed and how many tries were made.

A candidate is every public function and class of every module of its labkit (and the classes and loaders of the
shipped checkpoints); each is handed to each check in the check's calling convention. A check that passes is a
TODO the students' labkit answers. Used by tests/instructor/test_student_distribution.py.
"""
import contextlib
import importlib
import inspect
import io
import json
import os
import pkgutil
import signal
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

# the course repository's editable install (on the test machine) would import what the distribution lacks
sys.meta_path[:] = [finder for finder in sys.meta_path if "__editable__" not in repr(finder)]
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
DIST = Path(sys.argv[1]).resolve()
import labkit  # noqa: E402

assert Path(labkit.__file__).resolve().is_relative_to(DIST), labkit.__file__
TIME_LIMIT = 10  # seconds per try: a candidate that trains or waits is not an answer


def _public(module):
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        value = getattr(module, name, None)
        if (inspect.isfunction(value) or inspect.isclass(value)) and (value.__module__ or "").startswith("labkit"):
            yield f"{value.__module__}.{value.__qualname__}", value


def candidates():
    found = {}
    for info in pkgutil.walk_packages(labkit.__path__, "labkit."):
        if info.name.startswith(("labkit.__main__", "labkit.cli")):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # a module that needs what this machine lacks offers nothing either
            continue
        for name, value in _public(module):
            found.setdefault(name, value)
    from labkit.checkpoint import loadModel

    for path in sorted((DIST / "checkpoints").glob("*.pt")):
        try:
            model = loadModel(path)
        except Exception:
            continue
        found.setdefault(f"type(loadModel({path.name}))", type(model))
        found[f"loadModel({path.name})"] = type("Loaded", (), {"__new__": lambda cls, *a, _p=path, **k: loadModel(_p)})
    return found


# Correct partners for the checks that take two functions (so each candidate is judged on its own).
def noise_with_labels(z, labels):
    return torch.cat([z, F.one_hot(labels, 10).to(z.dtype)], dim=1)


def images_with_labels(x, labels):
    maps = F.one_hot(labels, 10).to(x.dtype)[:, :, None, None]
    return torch.cat([x, maps.expand(-1, -1, x.shape[2], x.shape[3])], dim=1)


def TRIES():
    from labkit.checks import cgan_mnist as c2, cwgan_gp_fashion as c4, dcgan_mnist as c3

    return {
        "classes": {
            "02 Generator": c2.check_generator, "02 Discriminator": c2.check_discriminator,
            "03 Generator": c3.check_generator, "03 Discriminator": c3.check_discriminator,
            "04 Critic": c4.check_critic,
        },
        "functions": {
            "02 train_step": c2.check_train_step, "02 discriminator_report": c2.check_discriminator_report,
            "02 nearest_label": c2.check_nearest_label, "02 interpolate": c2.check_interpolate,
            "02 variations": c2.check_variations,
            "03 train_step": c3.check_train_step, "03 generate": c3.check_generate,
            "04 noise_with_labels": lambda f: c4.check_conditioning(f, images_with_labels),
            "04 images_with_labels": lambda f: c4.check_conditioning(noise_with_labels, f),
            "04 get_WLoss_generator": lambda f: c4.check_wasserstein_losses(f, lambda fake, real: fake.mean() - real.mean()),
            "04 get_WLoss_discriminator": lambda f: c4.check_wasserstein_losses(lambda fake: -fake.mean(), f),
            "04 get_interpolates": c4.check_interpolates, "04 gradient penalty": c4.check_gradient_penalty,
            "04 critic_step": c4.check_critic_step, "04 generator_step": c4.check_generator_step,
            "04 generate": c4.check_generate,
        },
    }


class _TooLong(Exception):
    pass


def _alarm(*_):
    raise _TooLong()


def passes(check, candidate) -> bool:
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            check(candidate)
        return True
    except BaseException:  # noqa: B036 - a candidate that exits or times out is a failed try
        return False
    finally:
        signal.alarm(0)


def main():
    os.chdir(sys.argv[2])  # a scratch folder: candidates that write files write there
    found, tries = candidates(), TRIES()
    passed, count = [], 0
    for kind, checks in tries.items():
        for what, check in checks.items():
            for name, value in found.items():
                if inspect.isclass(value) != (kind == "classes"):
                    continue
                count += 1
                if passes(check, value):
                    passed.append(f"{what} <- {name}")
    print(json.dumps({"passed": passed, "tries": count, "candidates": len(found)}), flush=True)
    os._exit(0)  # candidates may have left threads or forks behind; their teardown is no part of the answer


if __name__ == "__main__":
    main()
