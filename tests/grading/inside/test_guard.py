"""The guard tells methods that dataclasses and namedtuples compile from strings for the libraries' classes (not
notebook code) from functions a notebook compiles (notebook code), whatever their file name says: the guard
took labkit.train's dataclasses for replaced and reloaded the module, which broke labs 02 and 03 under the
grader (a WeightAverage from before the reload no longer was one)."""
import subprocess
import sys

PROGRAM = r'''
import dataclasses, typing
from labkit.grading.inside import guard
from labkit import train
guard.init()
assert not guard._class_from_notebook(train.Snapshots), "a library dataclass taken for notebook code"
assert not guard._foreign(train.Snapshots.__init__), "a library dataclass's __init__ taken for notebook code"

@dataclasses.dataclass
class Mine:
    x: int = 0
assert guard._class_from_notebook(Mine)

namespace = {}
exec("def square(x):\n    return x * x", vars(train), namespace)   # made with a library's globals, not generated
assert guard._foreign(namespace["square"]), "a function compiled by the notebook passed for the library's"
print("ok")
'''


def test_generated_methods_of_library_classes_are_not_notebook_code():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
