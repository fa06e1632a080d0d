"""Crash safety of the whole run, with real pipeline runs and real models.

* A run killed (SIGKILL) while the Trainer runs, then started again, reuses
  every upstream result from the cache and trains, blesses and pushes.
* The pre-push smoke test at component level: a blessed model that cannot
  serve is never published.
* Two pushers publishing into one serving directory at the same moment, in
  two processes: both finish, and every version directory is complete.

The runs come from tests/small_run.py (shared with the report tests).
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

import small_run
from components.pusher import push
from pipeline import metadata
from pipeline.factory import NodeIds

pytestmark = pytest.mark.e2e


def _entries(serving):
  """What a serving directory holds besides the pushers' lock file."""
  return [n for n in os.listdir(serving) if n != push.LOCK_FILE]


@pytest.fixture(scope='module')
def crashed(tmp_path_factory):
  return small_run.crashed_and_resumed(tmp_path_factory)


def _files(root):
  return sorted(os.path.relpath(os.path.join(d, f), root)
                for d, _, fs in os.walk(root) for f in fs)


def test_the_run_was_killed_inside_the_trainer(crashed):
  progress = crashed.progress_before_kill
  for node in small_run.UPSTREAM:
    assert any(line.startswith(f'  < {node} done in ') for line in progress), (
        node, progress)
  assert progress[-1] == '  > trainer ...'
  assert crashed.killed_states[NodeIds.TRAINER] == 'RUNNING'
  assert NodeIds.GATE not in crashed.killed_states
  assert NodeIds.PUSHER not in crashed.killed_states


def test_rerun_reuses_upstream_and_completes(crashed):
  result = crashed.result
  assert crashed.exit_code == 0
  assert result.run_id != crashed.killed_run_id
  assert {n: result.nodes[n] for n in small_run.UPSTREAM} == dict.fromkeys(
      small_run.UPSTREAM, 'CACHED')
  for node in (NodeIds.TRAINER, NodeIds.GATE, NodeIds.PUSHER):
    assert result.nodes[node] == 'COMPLETE', result.nodes
  assert result.blessed
  assert result.pushed_to and os.path.exists(
      os.path.join(result.pushed_to, 'saved_model.pb'))
  # The only version is the resumed Trainer's model; nothing half-written.
  serving = os.path.dirname(result.pushed_to)
  assert _entries(serving) == [os.path.basename(result.pushed_to)]
  store = metadata.connect_sqlite(result.metadata_path)
  model = metadata.node_runs(store)[NodeIds.TRAINER].outputs['model'][0]
  with open(os.path.join(result.pushed_to, push.SOURCE_MARKER)) as f:
    assert f.read() == model.uri


def test_a_model_that_cannot_serve_is_not_pushed(crashed, tmp_path):
  model, _, _ = small_run.run_artifacts(crashed.result.metadata_path)
  broken = tmp_path / 'broken_model'
  shutil.copytree(model.uri, broken)
  # Blessed, but its weights are gone: loading it for serving fails.
  shutil.rmtree(broken / 'Format-Serving' / 'variables')
  serving = tmp_path / 'serving'
  with pytest.raises(push.PushError, match='serving signature'):
    small_run.safe_push(crashed.result.metadata_path, str(broken),
                        str(serving), str(tmp_path / 'pushed'))
  assert not serving.exists() or _entries(serving) == []


def test_two_pushers_at_once_both_land_complete(crashed, tmp_path):
  model, _, examples = small_run.run_artifacts(crashed.result.metadata_path)
  serving = tmp_path / 'serving'
  go = tmp_path / 'go'
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')
  procs, sources = [], {}
  for name in ('a', 'b'):
    # Two candidate models (copies at distinct URIs, as two runs would have).
    source = tmp_path / f'model_{name}'
    shutil.copytree(model.uri, source)
    sources[name] = str(source)
    procs.append(subprocess.Popen(
        [sys.executable, small_run.__file__, crashed.result.metadata_path,
         str(source), str(serving), str(tmp_path / f'pushed_{name}'),
         str(tmp_path / f'ready_{name}'), str(go)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
  deadline = time.monotonic() + small_run.TRAINER_START_TIMEOUT
  while not all((tmp_path / f'ready_{n}').exists() for n in sources):
    assert time.monotonic() < deadline and all(
        p.poll() is None for p in procs), [p.communicate() for p in procs]
    time.sleep(0.2)
  go.touch()  # Both are loaded and waiting: release them together.
  outputs = [p.communicate(timeout=600) for p in procs]
  for proc, (out, err) in zip(procs, outputs):
    assert proc.returncode == 0, err[-3000:]
  targets = [out.strip().splitlines()[-1] for out, _ in outputs]
  assert len(set(targets)) == 2
  assert sorted(_entries(serving)) == sorted(
      os.path.basename(t) for t in targets)  # No .incoming-* left behind.
  expected = sorted(_files(os.path.join(model.uri, 'Format-Serving')) +
                    [push.SOURCE_MARKER])
  raw = small_run.read_raw_examples(examples)
  for name, target in zip(sources, targets):
    assert _files(target) == expected
    with open(os.path.join(target, push.SOURCE_MARKER)) as f:
      assert f.read() == sources[name]
    assert len(push.verify_serving(target, raw)['probability']) == len(raw)
