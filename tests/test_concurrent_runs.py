"""Two whole pipeline runs started at once against one serving directory.

Each run has its own pipeline root and metadata store (two teams, two
schedules) but both push to the same TF Serving base directory. Both must
finish, each must publish its own model, and every version directory must be
complete and serve raw examples.
"""

import os
import subprocess
import sys

import pytest

import small_run
from components.pusher import push
from pipeline import cli

pytestmark = pytest.mark.e2e


def test_two_runs_at_once_share_a_serving_dir(tmp_path):
  data = small_run.write_taxi_sample(tmp_path / 'taxi.csv')
  serving = tmp_path / 'serving'
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')
  procs = []
  for name in ('a', 'b'):
    overrides = small_run.settings(
        data, tmp_path / name, [f'output.serving_dir={serving}'])
    procs.append(subprocess.Popen(
        [sys.executable, '-m', 'pipeline',
         *small_run.cli_args('run', overrides), '--quiet'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
  outputs = [p.communicate(timeout=1800) for p in procs]
  for proc, (_, err) in zip(procs, outputs):
    assert proc.returncode == cli.EXIT_OK, err[-3000:]
  versions = sorted(n for n in os.listdir(serving)  # No .incoming-* left.
                    if n != push.LOCK_FILE)
  assert len(versions) == 2 and all(v.isdigit() for v in versions), versions
  pushed_models = {}
  for name in ('a', 'b'):
    model, _, examples = small_run.run_artifacts(
        str(tmp_path / name / 'metadata.sqlite'))
    pushed_models[model.uri] = examples
  sources = []
  for version in versions:
    path = serving / version
    assert (path / 'saved_model.pb').exists()
    assert (path / 'variables' / 'variables.index').exists()
    with open(path / push.SOURCE_MARKER, encoding='utf-8') as f:
      sources.append(f.read())
    raw = small_run.read_raw_examples(pushed_models[sources[-1]])
    assert len(push.verify_serving(str(path), raw)['probability']) == len(raw)
  # One model from each run, not one model twice.
  assert sorted(sources) == sorted(pushed_models)
