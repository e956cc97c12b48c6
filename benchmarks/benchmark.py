"""Train each reference model under its documented budget and print time, throughput and quality,
next to a classic baseline trained on the same data with the same budget in the same run.

    python benchmarks/benchmark.py                 # full budgets, all models, 5 seeds
    python benchmarks/benchmark.py --quick         # quick-mode budgets, 1 seed (a smoke test)
    python benchmarks/benchmark.py --only gan1d --seeds 0 1 --jobs 2
    python benchmarks/benchmark.py --tiers --seeds 0 1 2     # 1D GAN: baseline, baseline x10, tuned vs the tiers
    python benchmarks/benchmark.py --tiers --arms tuned --cases laplace+halfnormal   # one arm, the handout's mixture
    ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE python benchmarks/benchmark.py --tiers --arms tuned   # other kernels
    python benchmarks/benchmark.py --threads                 # 1D GAN: 500 steps with 1 and 2 torch threads
    python benchmarks/benchmark.py --fast-paths              # 1D GAN: FlatAdam and direct draws against torch/scipy

Numbers are printed, never asserted. To add a model, write a function that yields one `Run` per
(case, seed) and register it in BENCHMARKS: each Run trains "ours" and "baseline" and measures both
with the same metric function.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclass
class Run:
    model: str            # e.g. "gan1d"
    case: str             # e.g. the target distribution
    seed: int
    train_ours: Callable  # () -> generator module
    train_baseline: Callable
    measure: Callable     # generator -> {metric: value}; the first metric is the headline
    targets: Dict[str, float]  # metric -> upper bound that counts as "met"


def throughput(generator, n: int = 100_000) -> float:
    """Samples per second generated on the CPU, in batches of 10,000."""
    from labkit.sampling import generate

    start = time.perf_counter()
    generate(generator, n, seed=0, batch_size=10_000)
    return n / (time.perf_counter() - start)


def gan1d_runs(quick: bool, seeds: List[int]) -> Iterator[Run]:
    """The tuned recipe of the 1D-GAN solution against the course baseline (its architecture and
    hyperparameters, trained for as many steps), on the four targets. Both are trained by the solution
    notebook's own train_gan (its export cells); the config class comes from labkit.labs.gan1d."""
    from labkit import distributions
    from labkit.checks.gan1d import quality_tiers
    from labkit.instructor.notebook import load_exports
    from labkit.labs.gan1d import GanConfig
    from labkit.labs.gan1d import measure as measure_1d

    solution = load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")

    for name in distributions.names():
        target = distributions.get(name)

        def measure(generator, target=target):
            m = measure_1d(generator, target)   # 100,000 samples, the graded check's noise seed
            return {"KS": m["ks"], "W1/std": m["w1_over_std"]}

        for seed in seeds:
            tuned = solution.tuned_config(name, seed=seed)
            tuned = tuned.quick() if quick else tuned
            baseline = GanConfig(target=name, seed=seed, epochs=tuned.epochs, steps_per_epoch=tuned.steps_per_epoch)
            yield Run("gan1d", name, seed,
                      train_ours=lambda c=tuned: solution.train_gan(c, snapshot_every=c.epochs).generator,
                      train_baseline=lambda c=baseline: solution.train_gan(c, snapshot_every=c.epochs).generator,
                      measure=measure, targets=dict(zip(("KS", "W1/std"), quality_tiers(name)["good"])))


BENCHMARKS = {"gan1d": gan1d_runs}


def execute(run: Run) -> Dict:
    import torch

    torch.set_num_threads(1)  # one worker per core; small models gain nothing from more threads
    row = {"model": run.model, "case": run.case, "seed": run.seed}
    start = time.perf_counter()
    ours = run.train_ours()
    row["train_s"] = time.perf_counter() - start
    row["samples/s"] = throughput(ours)
    metrics = run.measure(ours)
    start = time.perf_counter()
    base = run.train_baseline()
    row["base_train_s"] = time.perf_counter() - start
    base_metrics = run.measure(base)
    for key, value in metrics.items():
        row[key] = value
        row[f"base {key}"] = base_metrics[key]
        row[f"base/ours {key}"] = base_metrics[key] / max(value, 1e-12)
    row["met"] = "yes" if all(metrics[k] <= bound for k, bound in run.targets.items()) else "no"
    return row


GAN1D_ARMS = ("baseline", "baseline x10", "tuned")


def gan1d_tier_config(arm: str, case: str, seed: int, quick: bool):
    """The config of one arm of the tiers table on the target ``TIER_TARGETS[case]``: the course baseline (3,000
    steps), the same trained ten times longer, and the solution's tuned recipe; quick mode shortens each with
    GanConfig.quick (ratios kept)."""
    from labkit.checks.gan1d import TIER_TARGETS
    from labkit.instructor.notebook import load_exports
    from labkit.labs.gan1d import GanConfig

    target = TIER_TARGETS[case]
    if arm == "tuned":
        config = load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb").tuned_config(target, seed=seed)
    else:
        baseline = GanConfig(target=target, seed=seed)
        config = baseline if arm == "baseline" else GanConfig(target=target, seed=seed, epochs=10 * baseline.epochs)
    return config.quick() if quick else config


def _tier_reached(case: str, ks: float, w1: float) -> str:
    """The best tier whose limits ``ks`` and ``w1`` (W1/std) meet on ``case``'s target, or "-" (or "?": no limits
    set yet for that target)."""
    from labkit.checks.gan1d import QUALITY_TIERS

    tiers = QUALITY_TIERS.get(case)
    if tiers is None:
        return "?"
    return next((t for t in ("good", "fair") if ks <= tiers[t][0] and w1 <= tiers[t][1]), "-")


def gan1d_tier_row(args) -> Dict:
    """Train one (arm, target, seed) of the tiers table with the solution's train_gan; measure it as graded."""
    import torch

    from labkit.checks.gan1d import TIER_TARGETS
    from labkit.instructor.notebook import load_exports
    from labkit.labs.gan1d import measure

    arm, case, seed, quick = args
    torch.set_num_threads(1)
    solution = load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")
    config = gan1d_tier_config(arm, case, seed, quick)
    start = time.perf_counter()
    result = solution.train_gan(config, snapshot_every=config.epochs)
    seconds = time.perf_counter() - start
    m = measure(result.generator, TIER_TARGETS[case])
    row = {"target": case, "arm": arm, "seed": seed, "steps": config.total_steps, "train_s": seconds,
           "KS": m["ks"], "W1/std": m["w1_over_std"], "tier": _tier_reached(case, m["ks"], m["w1_over_std"])}
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def gan1d_tiers(quick: bool, seeds: List[int], jobs: int, cases=None, arms=GAN1D_ARMS) -> List[Dict]:
    """The 1D quality tiers against what earns them: per target of TIER_TARGETS (the named ones and the handout's
    mixture), the baseline, the baseline trained ten times longer and the tuned recipe (or only ``arms``), each
    measured like the graded check (100,000 samples); prints one line per run as it ends, then the table, then per
    target and arm the worst and best KS and W1/std over the seeds and the tiers reached. Also the torch version,
    its CPU capability and the threads: the numbers drift slightly between them (docs/benchmarks.md)."""
    import torch

    from labkit.checks.gan1d import QUALITY_TIERS, TIER_TARGETS
    from labkit.tables import format_table

    # Another machine's kernels, here: ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE (torch's and MKL's generic
    # code paths) changes the trained generators' last digits, as another CPU does (docs/benchmarks.md).
    kernels = ", ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR") if k in os.environ)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
          f"{', ' + kernels if kernels else ''}, 1 torch thread per run", flush=True)
    names = [n for n in TIER_TARGETS if not cases or n in cases]
    tasks = [(arm, name, seed, quick) for name in names for arm in arms for seed in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            rows = list(pool.map(gan1d_tier_row, tasks))
    else:
        rows = [gan1d_tier_row(t) for t in tasks]
    print(format_table(rows))
    summary = []
    for name in names:
        tiers = QUALITY_TIERS.get(name)
        for arm in arms:
            mine = [r for r in rows if r["target"] == name and r["arm"] == arm]
            summary.append({"target": name, "arm": arm, "seeds": len(mine),
                            "max KS": max(r["KS"] for r in mine), "max W1/std": max(r["W1/std"] for r in mine),
                            "min KS": min(r["KS"] for r in mine), "min W1/std": min(r["W1/std"] for r in mine),
                            "tiers": " ".join(r["tier"] for r in mine),
                            "good <=": "KS %s, W1/std %s" % tiers["good"] if tiers else "not set",
                            "fair <=": "KS %s, W1/std %s" % tiers["fair"] if tiers else "not set"})
    print(format_table(summary), flush=True)
    return rows


def _alternate_trainings(solution, configs: Dict, arms: Dict, reps: int):
    """Train each config under each arm (a context-manager factory), arms alternating, ``reps`` times, after a
    warm-up run; return ``({(config name, arm): [seconds, ...]}, {config name: {generator weights as bytes}})``."""
    from dataclasses import replace

    import torch

    solution.train_gan(replace(next(iter(configs.values())), epochs=1))   # warm-up: imports and first calls
    times, weights = {}, {}
    for _ in range(reps):
        for arm, context in arms.items():
            with context():
                for name, config in configs.items():
                    start = time.perf_counter()
                    result = solution.train_gan(config, snapshot_every=config.epochs)
                    times.setdefault((name, arm), []).append(time.perf_counter() - start)
                    flat = torch.cat([p.detach().flatten() for p in result.generator.parameters()])
                    weights.setdefault(name, set()).add(flat.numpy().tobytes())
    return times, weights


def gan1d_threads(reps: int = 3, epochs: int = 10) -> List[Dict]:
    """Time ``epochs`` x 50 generator steps of the baseline and the tuned recipe with 1 and 2 torch threads,
    alternating, ``reps`` times, in this process; say whether every run gave the same generator."""
    import contextlib
    import statistics
    from dataclasses import replace

    import torch

    from labkit.instructor.notebook import load_exports
    from labkit.labs.gan1d import GanConfig
    from labkit.tables import format_table

    solution = load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")
    configs = {"baseline": GanConfig(target="normal", epochs=epochs),
               "tuned": replace(solution.tuned_config("petitprince"), epochs=epochs)}

    @contextlib.contextmanager
    def threads(n):
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(1)

    times, weights = _alternate_trainings(solution, configs, {1: lambda: threads(1), 2: lambda: threads(2)}, reps)
    rows = [{"recipe": name, "steps": config.total_steps,
             "1 thread s": statistics.median(times[(name, 1)]), "2 threads s": statistics.median(times[(name, 2)]),
             "2/1": statistics.median(times[(name, 2)]) / statistics.median(times[(name, 1)]),
             "same generator": "yes" if len(weights[name]) == 1 else "no"} for name, config in configs.items()]
    print(format_table(rows), flush=True)
    return rows


def gan1d_fast_paths(reps: int = 3, epochs: int = 10) -> List[Dict]:
    """Time ``epochs`` x 50 generator steps of the baseline and the tuned recipe, one thread, alternating ``reps``
    times in this process: as shipped (labkit.optim.FlatAdam, the direct draws of labkit.distributions) and with
    torch.optim.Adam and scipy's rvs put back; say whether both gave the same generator, bit for bit."""
    import contextlib
    import statistics
    from dataclasses import replace

    import torch

    from labkit import distributions
    from labkit.instructor.notebook import load_exports
    from labkit.labs import gan1d
    from labkit.tables import format_table

    @contextlib.contextmanager
    def torch_and_scipy():
        draws, optimiser = dict(distributions._STANDARD_DRAWS), gan1d.FlatAdam
        distributions._STANDARD_DRAWS.clear()
        gan1d.FlatAdam = torch.optim.Adam
        try:
            yield
        finally:
            distributions._STANDARD_DRAWS.update(draws)
            gan1d.FlatAdam = optimiser

    torch.set_num_threads(1)
    solution = load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")
    configs = {"baseline (normal)": gan1d.GanConfig(target="normal", epochs=epochs),
               "tuned (petitprince)": replace(solution.tuned_config("petitprince"), epochs=epochs)}
    times, weights = _alternate_trainings(
        solution, configs, {"shipped": contextlib.nullcontext, "torch Adam, scipy rvs": torch_and_scipy}, reps)
    rows = []
    for name, config in configs.items():
        shipped, plain = (statistics.median(times[(name, arm)]) for arm in ("shipped", "torch Adam, scipy rvs"))
        rows.append({"recipe": name, "steps": config.total_steps, "threads": 1, "shipped s": shipped,
                     "torch+scipy s": plain, "shipped/torch+scipy": shipped / plain,
                     "same generator": "yes" if len(weights[name]) == 1 else "no"})
    print(format_table(rows), flush=True)
    return rows


def _execute_index(args):
    name, quick, seeds, index = args
    return execute(list(BENCHMARKS[name](quick, seeds))[index])


def main(argv=None):
    from labkit.tables import format_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick-mode budgets (smoke test)")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=sorted(BENCHMARKS))
    parser.add_argument("--seeds", nargs="*", type=int, help="default: 0..4 (full), 0 (quick)")
    parser.add_argument("--cases", nargs="*", help="only these cases (e.g. halfnormal; with --tiers also "
                                                   "laplace+halfnormal, the handout's mixture)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (one thread each)")
    parser.add_argument("--tiers", action="store_true",
                        help="1D GAN: baseline, baseline x10 and tuned per target against the graded quality tiers")
    parser.add_argument("--arms", nargs="*", choices=GAN1D_ARMS, default=list(GAN1D_ARMS),
                        help="with --tiers: only these arms")
    parser.add_argument("--threads", action="store_true", help="1D GAN: 500 generator steps with 1 and 2 threads")
    parser.add_argument("--fast-paths", action="store_true",
                        help="1D GAN: 500 generator steps with FlatAdam and direct draws, and with torch.optim.Adam "
                             "and scipy's rvs")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2, 3, 4])
    print(f"benchmark: {'quick' if args.quick else 'full'} budgets, seeds {seeds}, {args.jobs} worker(s), "
          f"{os.cpu_count()} CPUs", flush=True)
    if args.threads:
        gan1d_threads()
        return
    if args.fast_paths:
        gan1d_fast_paths()
        return
    if args.tiers:
        gan1d_tiers(args.quick, seeds, args.jobs, args.cases, tuple(args.arms))
        return
    for name in args.only:
        runs = list(BENCHMARKS[name](args.quick, seeds))
        tasks = [(name, args.quick, seeds, i) for i, r in enumerate(runs) if not args.cases or r.case in args.cases]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                rows = list(pool.map(_execute_index, tasks))
        else:
            rows = [_execute_index(t) for t in tasks]
        print(format_table(rows))
        for case in dict.fromkeys(r["case"] for r in rows):
            mine = [r for r in rows if r["case"] == case]
            print(f"{name} {case}: targets met for {sum(r['met'] == 'yes' for r in mine)}/{len(mine)} seeds, "
                  f"max train time {max(r['train_s'] for r in mine):.1f} s", flush=True)


if __name__ == "__main__":
    main()
