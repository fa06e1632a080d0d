"""The version of the code the components run, for TFX's cache.

TFX reuses an execution when its executor class, parameters and inputs are
those of an earlier one; the executors' own code is none of these (stock
TFX hashes a ``module_file`` into its wheel's name, but our functions are
named by import path). So a run after the code changed would reuse results
the old code produced. The runners pass this hash of the source the
executors import (``components/``, ``core/``) to ``create_pipeline``, which
puts it in ExampleGen's parameters: new code re-runs everything, the same
code reuses everything as before.
"""

import hashlib
import os

PACKAGES = ('components', 'core')
SUFFIXES = ('.py', '.yaml')
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_version(root: str = _ROOT) -> str:
  """A short hash of every source file of ``PACKAGES`` under ``root``: its
  path and its bytes."""
  digest = hashlib.sha256()
  for package in PACKAGES:
    for folder, dirs, files in os.walk(os.path.join(root, package)):
      dirs[:] = sorted(d for d in dirs if d != '__pycache__')
      for name in sorted(files):
        if name.endswith(SUFFIXES):
          path = os.path.join(folder, name)
          digest.update(os.path.relpath(path, root).encode() + b'\0')
          with open(path, 'rb') as f:
            digest.update(f.read() + b'\0')
  return digest.hexdigest()[:16]
