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
  proc = common.run_logged(cmd, os.path.join(workdir, 'run.log'),
                           ok_codes=FINISHED)
  # The runner's own reader: what the gate measured on the held-out split.
  from core import config as config_lib  # Heavy; after the timed run.
  from pipeline import local_runner
  config = config_lib.load_config(
      config_path, [*overrides, f'output.root={out_root}'])
  where = local_runner.paths(config)
  result = local_runner.read_result(where['metadata_path'],
                                    where['pipeline_root'])
  held_out = ((result.gate or {}).get('metrics') or {}).get('held_out', {})
  return {
      'wall_seconds': proc.wall_seconds,
      'process': proc,
      'exit_code': proc.exit_code,
      'blessed': result.blessed,
      'components': common.component_times(where['metadata_path']),
      'test_metrics': held_out.get('', {}),
      'training': result.training,
      'metadata_path': where['metadata_path'],
      'pipeline_root': where['pipeline_root'],
      'log': os.path.join(workdir, 'run.log'),
  }


def finished_taxi_run(workdir_root: str) -> str:
  """MLMD store of a finished default-config run on the taxi sample.

  P3 and P4 measure parts of a run, on that run's own artifacts.  P1's first
  run is reused when it exists (``make bench`` runs P1 first); otherwise
  one is made under ``<workdir>/taxi_source``.
  """
  for where in (os.path.join(workdir_root, 'p1', 'ours_0'),
                os.path.join(workdir_root, 'taxi_source')):
    path = os.path.join(where, 'out', 'metadata.sqlite')
    if os.path.exists(path) and _has_trained(path):
      return path
  print('[bench] running the pipeline on the taxi sample for its artifacts',
        flush=True)
  return run(os.path.join(workdir_root, 'taxi_source'))['metadata_path']


def _has_trained(metadata_path: str) -> bool:
  from pipeline.factory import NodeIds
  return any(t.component == NodeIds.TRAINER and t.state == 'COMPLETE'
             for t in common.component_times(metadata_path))


def load_source(metadata_path: str) -> Dict[str, object]:
  """A finished run's typed config and artifacts (as tfx Artifacts)."""
  import json

  from tfx.types import artifact_utils

  from core import config as config_lib
  from pipeline import metadata
  from pipeline.factory import NodeIds

  store = metadata.connect_sqlite(metadata_path)
  runs = metadata.node_runs(store)

  def artifact(node: str, key: str):
    proto = runs[node].outputs[key][0]
    artifact_type = store.get_artifact_types_by_id([proto.type_id])[0]
    return artifact_utils.deserialize_artifact(artifact_type, proto)

  # The Trainer receives the whole configuration (Transform only its data).
  props = runs[NodeIds.TRAINER].execution.custom_properties
  config = config_lib.from_dict(
      json.loads(props['custom_config'].string_value)['config'])
  gate_props = runs[NodeIds.GATE].execution.custom_properties
  return {
      'config': config,
      'examples': artifact(NodeIds.EXAMPLE_GEN, 'examples'),
      'schema': artifact(NodeIds.SCHEMA_GEN, 'schema'),
      'transformed_examples': artifact(NodeIds.TRANSFORM,
                                       'transformed_examples'),
      'transform_graph': artifact(NodeIds.TRANSFORM, 'transform_graph'),
      'model': artifact(NodeIds.TRAINER, 'model'),
      'gate_properties': {k: v.string_value for k, v in gate_props.items()},
  }
