"""End to end: LocalDagRunner on a taxi sample, checked in the metadata store.

One pipeline root, four runs in order (each test builds on the previous):

1. a regularized model: every node runs, the model is blessed and pushed;
2. the same again: everything up to the Trainer is cached; the gate re-runs
   because the resolver now finds run 1's blessed model, and the Pusher sees
   the model is already served and pushes nothing new. A third identical
   run is cached from end to end;
3. a deliberately overfit model (large, unregularized, trained long on the
   same small sample): not blessed because of the gap, not pushed;
4. a weaker model: not blessed because of the baseline check, and its
   baseline is run 1's model, never the gap-failed one from run 3.
"""

import csv
import io
import json
import os

import pytest
import tensorflow as tf

from components.pusher import push
from core import config as config_lib
from core import records
from core import tasks
from pipeline import history, local_runner, metadata
from pipeline.factory import NodeIds

pytestmark = pytest.mark.e2e

SAMPLE_ROWS = 3000
# About 450 held-out rows: the gap's interval (about +-0.04 in accuracy) is
# wider than the default max_gap of 0.03, which the gate would refuse to
# judge. The runs meant to pass the gap check loosen it; the overfit run
# keeps the default, which its gap exceeds beyond doubt.
LOOSE_GAPS = 'gate.max_gap={accuracy: 0.12, auc: 0.12, log_loss: 0.3}'
# One network: these runs test the pipeline, not the small-data ensemble
# (tests/test_tasks_e2e.py runs it).
ONE = 'model.ensemble_size=1'
FAST = ['model.epochs=12', ONE, 'model.train_eval_sample=1024',
        'gate.train_sample_size=1000', LOOSE_GAPS]
OVERFIT = ['regularization=none', ONE, 'model.hidden_units=[256, 256]',
           'model.batch_size=32', 'model.epochs=40', 'model.learning_rate=0.003',
           'model.train_eval_sample=1024', 'gate.train_sample_size=1000']
# Fewer epochs and a small learning rate: still decent, clearly weaker.
WEAKER = ['model.epochs=1', ONE, 'model.learning_rate=0.0003',
          'regularization.early_stopping=null', 'model.train_eval_sample=1024',
          'gate.train_sample_size=1000', LOOSE_GAPS,
          # Loosen quality so that the baseline check is what decides.
          'gate.min_accuracy_skill=-100', 'gate.min_log_loss_skill=-100',
          'gate.min_auc=0', 'gate.min_pr_auc_skill=-100',
          'gate.permissive=true']


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp('e2e')
  source = config_lib.taxi_sample_path()
  with open(source, newline='') as f:
    lines = [next(f) for _ in range(SAMPLE_ROWS + 1)]
  (root / 'taxi.csv').write_text(''.join(lines))
  return root


def _config(workdir, overrides):
  return config_lib.load_config(overrides=[
      f'data.path={workdir / "taxi.csv"}', f'output.root={workdir / "out"}',
      *overrides])


def _run(workdir, overrides):
  return local_runner.run_local(_config(workdir, overrides),
                                progress_stream=io.StringIO())


def _serving_versions(workdir):
  path = workdir / 'out' / 'serving_model'
  return [str(v) for v in push.versions(str(path))]


@pytest.fixture(scope='module')
def first(workdir):
  return _run(workdir, FAST)


def test_first_run_blesses_and_pushes(first, workdir):
  expected = {NodeIds.EXAMPLE_GEN, NodeIds.STATISTICS_GEN, NodeIds.SCHEMA_GEN,
              NodeIds.EXAMPLE_VALIDATOR, NodeIds.ANOMALY_GATE,
              NodeIds.TRANSFORM, NodeIds.TRAINER, NodeIds.LATEST_BLESSED,
              NodeIds.GATE, NodeIds.PUSHER}
  assert set(first.nodes) == expected
  assert all(state == 'COMPLETE' for state in first.nodes.values()), first.nodes
  assert first.blessed, first.gate['checks']
  assert first.gate['metrics']['baseline'] is None  # Nothing blessed before.
  assert first.pushed_to and os.path.exists(
      os.path.join(first.pushed_to, 'saved_model.pb'))
  assert _serving_versions(workdir) == [os.path.basename(first.pushed_to)]
  # The report's inputs exist: curves measured in this run.
  assert first.training['epochs_run'] >= 1
  assert set(first.training['epochs'][0]['train']) == set(
      tasks.get('binary').metrics)


def test_rerun_is_cached_and_pushes_nothing_new(first, workdir):
  second = _run(workdir, FAST)
  assert second.run_id != first.run_id
  upstream = {NodeIds.EXAMPLE_GEN, NodeIds.STATISTICS_GEN, NodeIds.SCHEMA_GEN,
              NodeIds.EXAMPLE_VALIDATOR, NodeIds.ANOMALY_GATE,
              NodeIds.TRANSFORM, NodeIds.TRAINER}
  assert {n: second.nodes[n] for n in upstream} == dict.fromkeys(
      upstream, 'CACHED')
  assert second.blessed
  assert second.gate['metrics']['baseline'] is not None  # Itself, now.
  assert second.pushed_to == first.pushed_to
  assert _serving_versions(workdir) == [os.path.basename(first.pushed_to)]
  third = _run(workdir, FAST)
  executed = {n: s for n, s in third.nodes.items()
              if s != 'CACHED' and n != NodeIds.LATEST_BLESSED}
  assert executed == {}, third.nodes



@pytest.fixture(scope='module')
def overfit(first, workdir):
  return _run(workdir, OVERFIT)


def test_overfit_model_is_blocked_by_the_gap(overfit, workdir, first):
  assert overfit.nodes[NodeIds.TRANSFORM] == 'CACHED'  # Upstream reused.
  assert overfit.nodes[NodeIds.TRAINER] == 'COMPLETE'
  assert not overfit.blessed
  assert 'gap' in overfit.gate['failed_checks'], overfit.gate['checks']
  gap = next(c for c in overfit.gate['checks']
             if c['kind'] == 'gap' and c['metric'] == 'accuracy'
             and not c['slice'])
  assert gap['value'] > gap['threshold']
  assert overfit.pushed_to is None
  assert _serving_versions(workdir) == [os.path.basename(first.pushed_to)]


def test_weaker_model_is_blocked_by_the_baseline(overfit, first, workdir):
  weaker = _run(workdir, WEAKER)
  assert not weaker.blessed
  assert weaker.gate['failed_checks'] == ['baseline'], weaker.gate['checks']
  assert weaker.pushed_to is None
  # The baseline it was compared with is run 1's model, not run 3's.
  store = metadata.connect_sqlite(str(workdir / 'out' / 'metadata.sqlite'))
  runs = metadata.node_runs(store)
  blessing = runs[NodeIds.GATE].outputs['blessing'][0]
  first_model = metadata.node_runs(store, first.run_id)[
      NodeIds.TRAINER].outputs['model'][0]
  overfit_model = metadata.node_runs(store, overfit.run_id)[
      NodeIds.TRAINER].outputs['model'][0]
  assert metadata.custom(blessing, 'baseline_model_id') == first_model.id
  assert overfit_model.id not in metadata.blessed_model_ids(store)
  assert first_model.id in metadata.blessed_model_ids(store)
  assert _serving_versions(workdir) == [os.path.basename(first.pushed_to)]


def test_runs_lists_blessed_and_blocked_runs(first, overfit, workdir):
  """``runs`` after run 1 (blessed, pushed) and run 3 (blocked by the gap),
  whichever other runs of this module happened in between."""
  path = str(workdir / 'out' / 'metadata.sqlite')
  records = history.list_runs(path)
  ids = [r.run_id for r in records]
  assert ids == metadata.run_ids(metadata.connect_sqlite(path))[::-1]
  assert ids.index(overfit.run_id) < ids.index(first.run_id)  # Newest first.
  assert [r.started for r in records] == sorted(
      (r.started for r in records), reverse=True)
  by_id = {r.run_id: r for r in records}
  blessed, blocked = by_id[first.run_id], by_id[overfit.run_id]

  assert blessed.blessed and blessed.state == 'COMPLETE'
  assert blessed.pushed_to == first.pushed_to and blessed.newly_pushed
  assert blessed.pushed_version == os.path.basename(first.pushed_to)
  assert blocked.blessed is False and blocked.state == 'COMPLETE'
  assert blocked.pushed_version is None
  assert blocked.reason == overfit.gate['reason']
  assert 'gap accuracy' in [c.name for c in blocked.failed_checks]
  assert sorted({c.kind for c in blocked.failed_checks}) == (
      overfit.gate['failed_checks'])
  for record, result in ((blessed, first), (blocked, overfit)):
    assert record.data == str(workdir / 'taxi.csv')
    assert record.data_bytes == os.path.getsize(workdir / 'taxi.csv')
    assert record.task == 'binary'
    held_out = result.gate['metrics']['held_out']['']
    assert [m.name for m in record.metrics] == list(
        tasks.get('binary').metrics)
    for m in record.metrics:
      assert m.held_out == pytest.approx(held_out[m.name])
    gap = next(c for c in result.gate['checks'] if c['kind'] == 'gap'
               and c['metric'] == 'accuracy' and not c['slice'])
    assert record.metric('accuracy').gap == pytest.approx(gap['value'])

  lines = history.format_runs(records).splitlines()
  assert max(map(len, lines)) <= 100, lines
  first_line = next(l for l in lines if l.startswith(first.run_id))
  assert first_line.endswith(f'blessed, pushed {blessed.pushed_version}')
  overfit_line = lines.index(next(
      l for l in lines if l.startswith(overfit.run_id)))
  assert 'NOT BLESSED: ' in lines[overfit_line]
  assert 'gap' in lines[overfit_line]
  assert '!)' in lines[overfit_line + 1]  # The gap over its max_gap.
  parsed = json.loads(history.to_json(records))
  assert [r['run_id'] for r in parsed] == ids
  assert parsed[ids.index(first.run_id)]['pushed_version'] == (
      blessed.pushed_version)


def test_new_code_reuses_nothing(first, workdir, monkeypatch):
  """The executors' code is no parameter TFX's cache sees; its version is
  (pipeline/code_version.py), so a run after an upgrade re-runs every
  component instead of reusing what the old code produced. Last in the
  module: it may push a new version."""
  from pipeline import code_version  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(code_version, 'code_version', lambda: 'a-new-version')
  upgraded = _run(workdir, FAST)
  assert {n: s for n, s in upgraded.nodes.items() if s == 'CACHED'} == {}, (
      upgraded.nodes)
  # Re-run from scratch, the same file gives the same features to the last
  # bit (components/transform.py batches by size, not by timing) and so the
  # same training, epoch by epoch.
  for split in ('train', 'eval'):
    assert (_transformed_rows(upgraded, split)
            == _transformed_rows(first, split)), split
  assert upgraded.training['epochs'] == first.training['epochs']


def _transformed_rows(result, split):
  """A run's transformed examples of ``split`` as sorted values: their
  order and the serialized bytes (a proto map has no fixed field order) may
  differ between two runs that computed the same."""
  store = metadata.connect_sqlite(result.metadata_path)
  uri = metadata.node_runs(store, result.run_id)[
      NodeIds.TRANSFORM].outputs['transformed_examples'][0].uri
  rows = []
  for record in records.iterate(records.split_files(uri, split)):
    features = tf.train.Example.FromString(record).features.feature
    rows.append(tuple(sorted(
        (name, tuple(f.float_list.value) or tuple(f.int64_list.value)
         or tuple(f.bytes_list.value)) for name, f in features.items())))
  return sorted(rows)
