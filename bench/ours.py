"""Runs our whole pipeline the way a user does, and reads back its figures.

Each run is ``python -m pipeline run`` (what ``make run`` calls) in a fresh
child process with a fresh output root, so nothing is cached and the wall
time covers the same things as the official example's: interpreter and
TensorFlow start-up, every component, export and push.  Per-component times
come from the run's MLMD store, read the same way for both pipelines
(:func:`bench.common.component_times`).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Dict, Optional, Sequence

from bench import common

# python -m pipeline run exit codes that mean "the pipeline ran to the end":
# 0 blessed and pushed, 3 finished but not blessed.
FINISHED = (0, 3)


def run(workdir: str, *, config_path: Optional[str] = None,
        overrides: Sequence[str] = ()) -> Dict[str, object]:
  """One uncached run of the pipeline under ``workdir``; its figures."""
  shutil.rmtree(workdir, ignore_errors=True)
  out_root = os.path.join(workdir, 'out')
  cmd = [sys.executable, '-m', 'pipeline', 'run']
  if config_path:
    cmd += ['--config', config_path]
  for item in (*overrides, f'output.root={out_root}'):
    cmd += ['--set', item]
  wall, code = common.run_logged(cmd, os.path.join(workdir, 'run.log'),
                                 ok_codes=FINISHED)
  # The runner's own reader: what the gate measured on the held-out split.
  from pipeline import config as config_lib  # Heavy; after the timed run.
  from pipeline import local_runner
  config = config_lib.load_config(
      config_path, [*overrides, f'output.root={out_root}'])
  where = local_runner.paths(config)
  result = local_runner.read_result(where['metadata_path'],
                                    where['pipeline_root'])
  held_out = ((result.gate or {}).get('metrics') or {}).get('held_out', {})
  return {
      'wall_seconds': wall,
      'exit_code': code,
      'blessed': result.blessed,
      'components': common.component_times(where['metadata_path']),
      'test_metrics': held_out.get('', {}),
      'training': result.training,
      'metadata_path': where['metadata_path'],
      'pipeline_root': where['pipeline_root'],
      'log': os.path.join(workdir, 'run.log'),
  }
