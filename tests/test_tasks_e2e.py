"""Each task end to end: multiclass, regression, imbalanced binary.

One pipeline root per task shape (tests/task_data.py), configured as a user
would: only ``task`` and the label differ from the defaults (and the size of
the gate's train sample). Three runs in each root, the third reusing
everything up to Transform from the first one's cache:

1. the default regularized model: blessed and pushed; its serving signature
   answers raw examples with the task's outputs, and the metadata store
   records the blessing and the push;
2. an oversized, unregularized network trained long on a small sample of
   the same data (the multiclass shape's own 1,500 rows are small enough):
   refused for its gap;
3. a network crushed to its bias by a huge L2 penalty, i.e. a model that
   predicts only the prior (or the mean): refused for quality.
"""

import io
import os

import numpy as np
import pytest
import tensorflow as tf

import task_data
from core import config as config_lib
from core import tasks
from pipeline import local_runner, metadata
from pipeline.factory import NodeIds
from small_run import read_raw_examples, run_artifacts

pytestmark = pytest.mark.e2e

COMMON = ['model.train_eval_sample=1024', 'gate.train_sample_size=3000']
# One network: the refusals are about what it learnt, not the ensemble.
OVERFIT = ['regularization=none', 'model.hidden_units=[256, 256]',
           'model.batch_size=16', 'model.ensemble_size=1']
# The overfit run's sample: rows (None: the shape's own data), the
# generator's settings, epochs. The imbalanced shape's strong signal leaves
# nothing to memorise; at signal 1 its labels are noisy enough to.
OVERFIT_SAMPLE = {'multiclass': (None, {}, 60),
                  'regression': (400, {}, 150),
                  'imbalanced': (3000, {'signal': 1.0}, 60)}
PRIOR_ONLY = ['regularization={l2: 30.0}', 'model.epochs=8',
              'model.ensemble_size=1']
# About 225 held-out rows: the default max_gap is narrower than the gap's
# interval, which the gate refuses to judge. The regularized runs, meant to
# pass, loosen it per task; the overfit runs keep the defaults.
LOOSE_GAPS = {
    'multiclass': 'gate.max_gap={accuracy: 0.2, macro_f1: 0.2, log_loss: 0.4}',
    'regression': 'gate.max_gap={rmse: 0.4, mae: 0.4}',
    'imbalanced': 'gate.max_gap={accuracy: 0.1, auc: 0.2, log_loss: 0.4}',
}


class _Shape:
  """One task shape's data, output root and runs (each run made once)."""

  def __init__(self, name, root):
    self.name, self.root = name, root
    self._writer = task_data.SHAPES[name][0]
    self.data = self._writer(root / f'{name}.csv')
    self._runs = {}

  def sample(self, rows, **settings):
    """``rows`` rows of the same generator (with ``settings``), as a file."""
    return self._writer(self.root / f'{self.name}_{rows}.csv', n=rows,
                        **settings)

  def config(self, overrides, data=None):
    return config_lib.load_config(overrides=task_data.overrides(
        self.name, data or self.data, str(self.root / 'out'),
        [*COMMON, *overrides]))

  def run(self, kind, overrides=(), data=None):
    if kind in ('regularized', 'prior_only'):
      overrides = [LOOSE_GAPS[self.name], *overrides]
    if kind not in self._runs:
      self._runs[kind] = local_runner.run_local(
          self.config(overrides, data), progress_stream=io.StringIO())
    return self._runs[kind]


@pytest.fixture(scope='module', params=['multiclass', 'regression',
                                        'imbalanced'])
def shape(request, tmp_path_factory):
  return _Shape(request.param, tmp_path_factory.mktemp(request.param))


def test_regularized_model_is_blessed_pushed_and_serves(shape):
  result = shape.run('regularized')
  assert all(s == 'COMPLETE' for s in result.nodes.values()), result.nodes
  assert result.blessed, [c for c in result.gate['checks'] if not c['passed']]
  config = shape.config(())
  task = tasks.get(config.task)
  assert result.gate['task'] == task.name == result.training['task']
  assert {c['metric'] for c in result.gate['checks'] if c['kind'] == 'gap'
          } == set(task.default_max_gap)
  assert set(result.training['epochs'][0]['train']) == set(task.metrics)
  # The default small-data ensemble on 1,500 rows; one network on the
  # imbalanced shape's 20,000 (above model.ensemble_max_rows).
  ensemble = result.training.get('ensemble')
  if shape.name == 'imbalanced':
    assert ensemble is None
  else:
    assert ensemble['size'] == config.model.ensemble_size == 5
    assert len({m['seed'] for m in ensemble['members']}) == 5
    assert set(ensemble['eval']) == set(task.metrics)

  # The metadata store: the gate blessed exactly the Trainer's model, and
  # the Pusher published it.
  store = metadata.connect_sqlite(result.metadata_path)
  runs = metadata.node_runs(store)
  model = runs[NodeIds.TRAINER].outputs['model'][0]
  blessing = runs[NodeIds.GATE].outputs['blessing'][0]
  assert metadata.custom(blessing, 'blessed') == 1
  assert metadata.custom(blessing, 'current_model_id') == model.id
  pushed = runs[NodeIds.PUSHER].outputs['pushed_model'][0]
  assert metadata.custom(pushed, 'pushed') == 1
  assert result.pushed_to and os.path.isdir(result.pushed_to)

  # The pushed model answers raw examples with the task's output contract.
  recorded, label, info = tasks.read_model_task(result.pushed_to)
  assert (recorded, label) == (task, config.data.label.name)
  _, _, examples = run_artifacts(result.metadata_path)
  raw = read_raw_examples(examples, count=32)
  outputs = tf.saved_model.load(result.pushed_to).signatures[
      'serving_default'](examples=tf.constant(raw))
  outputs = {k: v.numpy() for k, v in outputs.items()}
  task.check_serving(outputs, len(raw), info)
  if shape.name == 'regression':
    # Original units: the log target is inverted in the signature.
    labels = [float(tf.train.Example.FromString(r).features.feature[
        'target'].float_list.value[0]) for r in raw]
    prediction = outputs['prediction'].ravel()
    assert prediction.min() > 0
    assert 0.3 < np.median(prediction) / np.median(labels) < 3


def test_oversized_unregularized_model_is_refused_for_its_gap(shape):
  shape.run('regularized')
  rows, settings, epochs = OVERFIT_SAMPLE[shape.name]
  result = shape.run('overfit', OVERFIT + [f'model.epochs={epochs}'],
                     data=shape.sample(rows, **settings) if rows else None)
  assert not result.blessed
  assert 'gap' in result.gate['failed_checks'], result.gate['checks']
  assert result.pushed_to is None


def test_prior_only_model_is_refused_for_quality(shape):
  shape.run('regularized')
  result = shape.run('prior_only', PRIOR_ONLY)
  assert result.nodes[NodeIds.TRANSFORM] == 'CACHED'  # Upstream reused.
  assert not result.blessed
  assert 'quality' in result.gate['failed_checks'], result.gate['checks']
  assert result.pushed_to is None
