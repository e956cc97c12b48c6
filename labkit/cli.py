"""The ``labkit`` command (also ``python -m labkit``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .paths import repo_root


def _cmd_run(args) -> int:
    from .instructor.notebook import execute

    solutions = sorted((repo_root() / "notebooks" / "solutions").glob("*.ipynb"))
    if args.only:
        solutions = [p for p in solutions if p.stem in args.only or any(p.stem.startswith(o) for o in args.only)]
    if not solutions:
        raise ValueError("No solution notebooks matched; names are in notebooks/solutions/.")
    out = Path(args.out).resolve()  # the kernels run in notebooks/solutions/: a relative path would land there
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in solutions:
        # Each notebook runs in its own folder under --out: whatever it saves stays there, not in notebooks/.
        result = execute(path, out / path.name, quick=not args.full, output_dir=out, cell_timeout=args.cell_timeout,
                         workdir=out / "work" / path.stem)
        print(result.summary(), flush=True)
        failures += result.status != "ok"
    print(f"executed notebooks, figures and GIFs are in {out.resolve()}")
    return 1 if failures else 0


def _cmd_release(args) -> int:
    from .instructor.release import build_student_distribution, release_all

    stale = release_all(repo_root(), check=args.check)
    if args.check:
        if stale:
            print("out of date (run `labkit release`): " + ", ".join(stale))
            return 1
        print("student notebooks are a fresh release of the solutions")
        return 0
    print("wrote " + (", ".join(stale) if stale else "nothing: everything was up to date"))
    if args.dist:
        dist = Path(args.dist).resolve()
        folder, *archive = build_student_distribution(repo_root(), dist, zip_path=dist.with_suffix(".zip"))
        files = [p for p in folder.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files) / 1e6
        print(f"students' distribution: {folder} ({len(files)} files, {size:.1f} MB)"
              + "".join(f" and {a} ({a.stat().st_size / 1e6:.1f} MB)" for a in archive)
              + "; publish it as the course repository named in README.md")
    return 0


def _cmd_sample(args) -> int:
    import numpy as np

    from .checkpoint import loadModel
    from .sampling import generate

    model = loadModel(args.checkpoint)
    samples, labels = generate(model, args.n, labels=args.label, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, samples)
    message = f"wrote {out} {samples.shape} {samples.dtype}"
    if labels is not None and args.label is None:
        label_path = out.with_name(out.name[:-4] + ".labels.npy" if out.name.endswith(".npy") else out.name + ".labels.npy")
        np.save(label_path, labels)
        message += f" and {label_path} (labels cycle 0..{int(labels.max())})"
    if args.grid:
        message += f"; grid {_save_sample_grid(samples, labels, args.checkpoint, args.grid)}"
    print(message)
    return 0


def _save_sample_grid(samples, labels, checkpoint, path) -> Path:
    """A PNG of image samples, one class per row for a conditional generator, with class names as captions."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from .checkpoint import read_checkpoint
    from .models.classifier import CLASS_NAMES
    from .viz.plotting import image_grid

    if samples.ndim != 3:
        raise ValueError("--grid draws images; this generator gives one number per sample.")
    names = CLASS_NAMES.get(str(read_checkpoint(checkpoint).get("metadata", {}).get("dataset", "")))
    order = np.argsort(labels, kind="stable") if labels is not None else np.arange(len(samples))
    n_per_row = int(np.bincount(labels).max()) if labels is not None else int(np.ceil(np.sqrt(len(samples))))
    fig = image_grid(samples[order], None if labels is None else labels[order], nrow=n_per_row, class_names=names,
                     value_range=(0, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _cmd_evaluate(args) -> int:
    from .metrics import evaluate_checkpoint

    print(evaluate_checkpoint(args.checkpoint, dataset=args.dataset, n=args.n, seed=args.seed, target=args.target))
    return 0


def _cmd_grade(args) -> int:
    from .grading.command import main as grade_main

    return grade_main(args)


def _source(args):
    return Path(args.source) if args.source else None


def _print_result(result) -> int:
    """Warnings first, then the one-line summary (``labkit pack`` and ``labkit report``)."""
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(result.summary())
    return 0


def _cmd_pack(args) -> int:
    from .student.pack import pack_submission

    return _print_result(pack_submission(args.notebook, out=args.out, members=args.member or (), source=_source(args)))


def _cmd_report(args) -> int:
    from .student.report import write_report

    return _print_result(write_report(args.notebook, out=args.out, instructions=args.instructions,
                                      source=_source(args)))


def _cmd_check(args) -> int:
    from .grading.options import reference_policy
    from .student.check import check_notebook

    print(f"checking {args.notebook} as the grader will (quick mode, the course's check cells) ...", flush=True)
    result = check_notebook(args.notebook, source=_source(args), out=Path(args.out) if args.out else None,
                            references=reference_policy(args))
    print(result.text())
    if args.out:
        print(f"\ngrades.csv and the feedback page are in {args.out}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, whose errors about arguments it took for options say how to pass a name that starts with '-'."""

    def error(self, message):
        if "unrecognized arguments: -" in message or "the following arguments are required" in message:
            message += ("; a file or folder name that starts with '-' goes after '--', which ends the options: "
                        "labkit grade --assignment NAME --out DIR -- -2+3 other/")
        super().error(message)


def _cmd_autograder(args) -> int:
    from .grading.gradescope import AutograderSettings, build_autograder

    settings = AutograderSettings(assignment=args.assignment, timeout=args.timeout, memory_gb=args.memory)
    advice = build_autograder(args.assignment, Path(args.out), source=_source(args), settings=settings)
    print(f"wrote {args.out}: upload it as the assignment's autograder on Gradescope")
    print(advice)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="labkit", description="Support tools for the GAN course notebooks.",
                     epilog="Names that start with '-' go after '--': labkit grade ... -- -2+3")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute every reference notebook headless (quick mode) and keep the results")
    run.add_argument("--out", default="build", help="folder for executed notebooks, figures and GIFs (default: build)")
    run.add_argument("--full", action="store_true", help="full training instead of quick mode (slow on a CPU)")
    run.add_argument("--only", nargs="*", help="notebook names or prefixes, e.g. 01")
    run.add_argument("--cell-timeout", type=int, default=900)
    run.set_defaults(func=_cmd_run)

    rel = sub.add_parser("release", help="write the student notebooks from notebooks/solutions, then the students' "
                                         "distribution")
    rel.add_argument("--check", action="store_true", help="only report whether the committed releases are fresh")
    rel.add_argument("--dist", default=str(repo_root() / "dist" / "student"), metavar="DIR",
                     help="where the students' distribution goes, and DIR.zip (default: dist/student; '' for none)")
    rel.set_defaults(func=_cmd_release)

    smp = sub.add_parser("sample", help="sample a saved generator to a .npy file, without training")
    smp.add_argument("checkpoint")
    smp.add_argument("--n", type=int, required=True, help="number of samples")
    smp.add_argument("--out", required=True, help="output .npy file")
    smp.add_argument("--label", type=int, help="class for a conditional generator (default: cycle 0..9)")
    smp.add_argument("--seed", type=int, default=0)
    smp.add_argument("--grid", metavar="PNG", help="also draw the samples into this PNG (a conditional generator: one "
                                                   "class per row)")
    smp.set_defaults(func=_cmd_sample)

    ev = sub.add_parser("evaluate", help="quality metrics of a saved generator (offline)")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", choices=["mnist", "fashion_mnist"], help="image data set (default: from metadata)")
    ev.add_argument("--target", help="1D target distribution (default: from metadata)")
    ev.add_argument("--n", type=int, default=5000)
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=_cmd_evaluate)

    chk = sub.add_parser("check", help="what the grader will give your notebook, and what is still missing")
    chk.add_argument("notebook", help="your lab notebook, with the models it saved next to it")
    chk.add_argument("--out", metavar="DIR", help="keep grades.csv and the feedback page there")
    chk.add_argument("--source", metavar="DIR", help=argparse.SUPPRESS)
    chk.add_argument("--allow-reference-models", action="store_true",
                     help="instructors: credit saved models that are reference checkpoints, as `labkit grade "
                          "--allow-reference-models` does for the course's own solution")
    chk.set_defaults(func=_cmd_check)

    pack = sub.add_parser("pack", help="the hand-in zip: the notebook, its saved models, READ_ME.txt filled in")
    pack.add_argument("notebook", help="your lab notebook, e.g. notebooks/01_gan_1d.ipynb")
    pack.add_argument("--out", metavar="FILE.zip", help="the zip to write (default: NOTEBOOK_NAME.zip here)")
    pack.add_argument("--member", action="append", metavar='"NAME, ID"', help="a group member (repeat per member)")
    pack.add_argument("--source", metavar="DIR", help=argparse.SUPPRESS)  # the instructor's notebooks (tests)
    pack.set_defaults(func=_cmd_pack)

    rep = sub.add_parser("report", help="the written report: headings, answers, figures, tables, GIFs, no code")
    rep.add_argument("notebook", help="your executed, saved notebook")
    rep.add_argument("--out", metavar="FILE.html", help="default: NOTEBOOK_report.html next to the notebook")
    rep.add_argument("--instructions", action="store_true", help="also the handout's text, not only its headings")
    rep.add_argument("--source", metavar="DIR", help=argparse.SUPPRESS)
    rep.set_defaults(func=_cmd_report)

    auto = sub.add_parser("autograder", help="the Gradescope autograder zip of one assignment (see docs/grading.md)")
    auto.add_argument("--assignment", required=True, metavar="NAME", help="e.g. 01_gan_1d")
    auto.add_argument("--out", default="autograder.zip", metavar="FILE.zip", help="default: autograder.zip")
    auto.add_argument("--source", metavar="DIR", help="the instructor's notebooks (default: notebooks/solutions)")
    auto.add_argument("--timeout", type=float, default=900, metavar="S",
                      help="seconds for the notebook once its kernel is ready (default 900)")
    auto.add_argument("--memory", type=float, default=3, metavar="GB", help="memory per run (default 3)")
    auto.set_defaults(func=_cmd_autograder)

    from .grading.options import add_arguments as add_grade_arguments

    grade = sub.add_parser("grade", help="grade a folder of submissions (see README: Grading)")
    add_grade_arguments(grade)
    grade.set_defaults(func=_cmd_grade)
    return parser


def main(argv=None) -> int:
    from .checkpoint_format import CheckpointError  # not .checkpoint: that imports torch

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:  # the user's input; anything else is a bug
        print(f"labkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
