"""Grading a folder of submissions (being written: see issue 5)."""


def add_arguments(parser):
    parser.add_argument("submissions", nargs="*")


def main(args):
    raise ValueError("labkit grade is not available yet.")
