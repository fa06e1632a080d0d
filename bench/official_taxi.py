"""The anchor for P1: the official TFX taxi native-Keras example, as shipped.

``taxi_pipeline_native_keras.py`` and ``taxi_utils_native_keras.py`` are copied
from the installed tfx wheel into a scratch directory at run time (never
vendored), and run in a child process on the same taxi sample our pipeline
uses.  The copied files are not edited.  What differs from the example's own
``__main__`` block, and why:

* Paths: its module-level ``_create_pipeline`` is called with scratch paths
  instead of ``~/taxi`` and ``~/tfx``; data is the wheel's
  ``data/simple`` directory, as in the example.
* Runner: ``LocalDagRunner`` instead of ``BeamDagRunner``, so that both
  pipelines are orchestrated alike (ours runs with ``LocalDagRunner``).  The
  example's Beam arguments (``multi_processing``, one worker per core) are
  kept.
* User module: TFX packages ``module_file`` into a wheel and installs it with
  ``python -m pip install --target`` before Transform and Trainer run.  The
  project venv has no pip, so that install fails.  TFX's switch
  ``UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES=1`` (load the file from source) is
  no way out: the example's ``multi_processing`` Beam workers then cannot
  unpickle the source-loaded ``user_module_0`` (ModuleNotFoundError).  So
  when the venv has no pip, the child gets the pip wheel that CPython bundles
  for ``ensurepip`` on its ``PYTHONPATH`` (pip runs from a wheel; nothing is
  installed into the venv and nothing is downloaded), and the example runs
  as designed, wheel build and install included.  The report says which.

Per-component times come from the run's MLMD store (see
:func:`bench.common.component_times`); the eval accuracy is the Evaluator's
``binary_accuracy`` on the example's eval split.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import sys
from typing import Dict, Optional

from bench import common

PIPELINE_FILE = 'taxi_pipeline_native_keras.py'
UTILS_FILE = 'taxi_utils_native_keras.py'
PIPELINE_NAME = 'chicago_taxi_native_keras'  # The example's own name.


def example_dir() -> str:
  spec = importlib.util.find_spec('tfx')
  return os.path.join(os.path.dirname(spec.origin), 'examples',
                      'chicago_taxi_pipeline')


def bundled_pip_wheel() -> Optional[str]:
  """The pip wheel shipped with CPython's ensurepip, if the venv lacks pip."""
  if importlib.util.find_spec('pip') is not None:
    return None
  import ensurepip  # Only to locate its bundled wheels; nothing is installed.
  wheels = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__),
                                         '_bundled', 'pip-*.whl')))
  if not wheels:
    raise RuntimeError(
        'The venv has no pip and this Python bundles no pip wheel for '
        'ensurepip; TFX cannot install the example\'s user module wheel.')
  return wheels[-1]


def copy_example(dest: str) -> str:
  """Copies the two example files from the installed wheel into ``dest``."""
  os.makedirs(dest, exist_ok=True)
  for name in (PIPELINE_FILE, UTILS_FILE):
    shutil.copy2(os.path.join(example_dir(), name), os.path.join(dest, name))
  return dest


def run(workdir: str) -> Dict[str, object]:
  """Runs the official example once in a fresh child process; its figures."""
  shutil.rmtree(workdir, ignore_errors=True)
  src = copy_example(os.path.join(workdir, 'src'))
  paths = {
      'data_root': os.path.join(example_dir(), 'data', 'simple'),
      'module_file': os.path.join(src, UTILS_FILE),
      'pipeline_root': os.path.join(workdir, 'pipeline_root'),
      'metadata_path': os.path.join(workdir, 'metadata.sqlite'),
      'serving_model_dir': os.path.join(workdir, 'serving_model'),
  }
  # Only pip goes on the child's path: the copied module reaches Transform,
  # Trainer and the Beam workers through TFX's own wheel, as designed.
  pip_wheel = bundled_pip_wheel()
  env = {'PYTHONPATH': pip_wheel} if pip_wheel else {}
  cmd = [sys.executable, '-m', 'bench.official_taxi']
  for key, value in paths.items():
    cmd += [f'--{key}', value]
  proc = common.run_logged(cmd, os.path.join(workdir, 'run.log'), env=env)
  times = common.component_times(paths['metadata_path'])
  return {
      'wall_seconds': proc.wall_seconds,
      'process': proc,
      'components': times,
      'eval_accuracy': eval_accuracy(paths['metadata_path']),
      'user_module': ('TFX-built wheel, installed by TFX with the venv\'s pip'
                      if pip_wheel is None else
                      'TFX-built wheel, installed by TFX with the pip wheel '
                      f'bundled for ensurepip ({os.path.basename(pip_wheel)})'),
      'log': os.path.join(workdir, 'run.log'),
  }


def eval_accuracy(metadata_path: str) -> float:
  """The Evaluator's overall ``binary_accuracy``, as its example reports it."""
  import tensorflow_model_analysis as tfma  # Heavy; only after the run.
  uri = common.output_artifact_uri(metadata_path, 'Evaluator',
                                   'ModelEvaluation')
  for metrics in tfma.load_metrics(uri):
    if not metrics.slice_key.single_slice_keys:  # The overall slice.
      for kv in metrics.metric_keys_and_values:
        if kv.key.name == 'binary_accuracy':
          return kv.value.double_value.value
  raise LookupError(f'no overall binary_accuracy in {uri}')


def _child(argv) -> None:
  """Entry point of the child process: builds and runs the example."""
  parser = argparse.ArgumentParser()
  for key in ('data_root', 'module_file', 'pipeline_root', 'metadata_path',
              'serving_model_dir'):
    parser.add_argument(f'--{key}', required=True)
  args = parser.parse_args(argv)

  from absl import logging
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner

  # The copied example, loaded from its file: nothing is added to sys.path.
  path = os.path.join(os.path.dirname(args.module_file), PIPELINE_FILE)
  spec = importlib.util.spec_from_file_location(
      os.path.splitext(PIPELINE_FILE)[0], path)
  official = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(official)

  logging.set_verbosity(logging.INFO)
  LocalDagRunner().run(
      official._create_pipeline(  # pylint: disable=protected-access
          pipeline_name=PIPELINE_NAME,
          pipeline_root=args.pipeline_root,
          data_root=args.data_root,
          module_file=args.module_file,
          serving_model_dir=args.serving_model_dir,
          metadata_path=args.metadata_path,
          beam_pipeline_args=official._beam_pipeline_args))  # pylint: disable=protected-access


if __name__ == '__main__':
  _child(sys.argv[1:])
