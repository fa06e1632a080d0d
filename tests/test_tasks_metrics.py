"""The tasks' gate statistics (core/tasks/*.py accumulators) checked by hand.

Each accumulator is what the gate's TFMA metric runs; here it is fed
(label, prediction) pairs directly, in the shapes TFMA hands over, and its
results are compared with Keras (the Trainer's definitions), scikit-learn
or numpy on tiny examples. Then its bootstrap replicates: each one is the
statistic of the rows resampled by their Poisson counts, whatever the
merging. Then the quality checks: the trivial predictor fails each task's,
a model with signal passes them at the default bounds.
"""

import math

import numpy as np
import pytest
import tf_keras as keras
from sklearn import metrics as skm

from core import config as config_lib
from core import tasks
from core.tasks import base, regression

BINARY, MULTICLASS, REGRESSION = (tasks.get('binary'), tasks.get('multiclass'),
                                  tasks.get('regression'))


def _gate(task_name):
  return config_lib.parse_gate({}, task_name)  # GateConfig defaults.


def _run(task, info, labels, predictions):
  """The accumulator fed one example at a time, as TFMA does."""
  acc = task.accumulator(info)
  for y, p in zip(labels, predictions):
    acc.add(np.atleast_1d(np.asarray(y)), np.atleast_1d(np.asarray(p)))
  return acc.result()


def _assert_complete(task, result):
  assert set(result) - {base.REPLICATES} == (set(task.gate_metric_names)
                                             | set(task.gate_arrays))
  for name in task.gate_metric_names:
    assert isinstance(result[name], float), name
  for name in task.gate_arrays:
    assert isinstance(result[name], list), name


def _passed(checks):
  return {c.metric: c.passed for c in checks}


# --------------------------------------------------------------------------
# Binary.

B_LABELS = [0, 1, 1, 0, 1, 0, 0, 1, 0, 0]
B_PREDS = [0.10, 0.80, 0.35, 0.62, 0.91, 0.05, 0.40, 0.55, 0.20, 0.71]


def test_binary_against_hand_keras_and_sklearn():
  info = {'positive_rate': 0.3}
  r = _run(BINARY, info, B_LABELS, B_PREDS)
  _assert_complete(BINARY, r)
  y, p = np.array(B_LABELS), np.array(B_PREDS)
  assert r['example_count'] == 10.0
  # Correct at 0.5: rows 0,1,4,5,6,7,8 -> 7 of 10.
  assert r['accuracy'] == pytest.approx(0.7)
  assert r['accuracy'] == pytest.approx(float(
      keras.metrics.binary_accuracy(y[:, None], p[:, None]).numpy().mean()))
  assert r['auc'] == pytest.approx(skm.roc_auc_score(y, p))
  # By hand: 4 positives x 6 negatives, 19 of the 24 pairs ordered right.
  assert r['auc'] == pytest.approx(19 / 24)
  keras_auc = keras.metrics.AUC(num_thresholds=10_001)
  keras_auc.update_state(y, p)
  assert r['auc'] == pytest.approx(float(keras_auc.result()), abs=1e-3)
  assert r['pr_auc'] == pytest.approx(skm.average_precision_score(y, p))
  expected = float(keras.losses.BinaryCrossentropy()(y[:, None], p[:, None]))
  assert r['log_loss'] == pytest.approx(expected, rel=1e-5)
  assert r['mean_label'] == pytest.approx(0.4)
  # The train prior (0.3 < 0.5) predicts 0 everywhere: right on 6 of 10.
  assert r['majority_accuracy'] == pytest.approx(0.6)
  prior = float(keras.losses.BinaryCrossentropy()(
      y[:, None], np.full((10, 1), 0.3)))
  assert r['prior_log_loss'] == pytest.approx(prior, rel=1e-5)
  # The precision-recall curve: recall from 0 up to 1.
  assert r['pr_curve_recall'][0] == 0.0 and r['pr_curve_recall'][-1] == 1.0
  assert len(r['pr_curve_precision']) == len(r['pr_curve_recall'])


def test_binary_log_loss_equals_keras_even_when_saturated():
  labels = [0, 1, 1, 0, 1]
  preds = [0.0, 1.0, 0.7, 1.0, 0.2]  # What an overfit float32 network outputs.
  r = _run(BINARY, {'positive_rate': 0.5}, labels, preds)
  expected = float(keras.losses.BinaryCrossentropy()(
      np.array(labels, float)[:, None], np.array(preds)[:, None]))
  assert math.isfinite(r['log_loss'])
  assert r['log_loss'] == pytest.approx(expected, rel=1e-5)


def test_binary_single_class_auc_is_nan_and_a_nan_prediction_does_not_crash():
  r = _run(BINARY, {'positive_rate': 0.5}, [1, 1, 1], [0.2, 0.6, 0.9])
  assert math.isnan(r['auc'])
  assert r['mean_label'] == 1.0
  r = _run(BINARY, {'positive_rate': 0.5}, [0, 1], [float('nan'), 0.9])
  assert math.isnan(r['log_loss'])
  assert r['example_count'] == 2.0


def test_binary_rejects_a_label_that_is_not_0_or_1():
  with pytest.raises(base.LabelError):
    _run(BINARY, {'positive_rate': 0.5}, [2], [0.5])


# --------------------------------------------------------------------------
# Multiclass.

M_INFO = {'classes': ['a', 'b', 'c'], 'frequencies': [0.5, 0.3, 0.2]}
M_LABELS = [0, 1, 2, 1, 0, 2, 1, 0]
M_PREDS = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.5, 0.3],
           [0.3, 0.4, 0.3], [0.5, 0.1, 0.4], [0.1, 0.1, 0.8],
           [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]


def test_multiclass_against_hand_keras_and_sklearn():
  r = _run(MULTICLASS, M_INFO, M_LABELS, M_PREDS)
  _assert_complete(MULTICLASS, r)
  y, p = np.array(M_LABELS), np.array(M_PREDS)
  predicted = p.argmax(axis=1)  # [0, 1, 1, 1, 0, 2, 0, 2]
  assert r['example_count'] == 8.0
  assert r['accuracy'] == pytest.approx(5 / 8)
  assert r['accuracy'] == pytest.approx(float(np.mean(
      keras.metrics.sparse_categorical_accuracy(y, p).numpy())))
  assert r['macro_f1'] == pytest.approx(skm.f1_score(y, predicted,
                                                     average='macro'))
  # By hand: recall a 2/3, b 2/3, c 1/2.
  assert r['balanced_accuracy'] == pytest.approx(
      skm.balanced_accuracy_score(y, predicted))
  assert r['balanced_accuracy'] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
  assert r['log_loss'] == pytest.approx(float(
      keras.losses.SparseCategoricalCrossentropy()(y, p)), rel=1e-5)
  assert r['confusion_matrix'] == skm.confusion_matrix(y, predicted).tolist()
  assert r['class_recall'] == pytest.approx([2 / 3, 2 / 3, 1 / 2])
  assert r['class_frequency'] == pytest.approx([3 / 8, 3 / 8, 2 / 8])
  # The train split's majority class is 'a' (frequency 0.5): right on 3 of 8.
  assert r['majority_accuracy'] == pytest.approx(3 / 8)
  prior = np.tile(M_INFO['frequencies'], (8, 1))
  assert r['prior_log_loss'] == pytest.approx(float(
      keras.losses.SparseCategoricalCrossentropy()(y, prior)), rel=1e-5)
  assert r['unknown_class_count'] == 0.0


def test_multiclass_log_loss_equals_keras_when_saturated():
  labels = [0, 1, 2]
  preds = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.2, 0.8]]
  r = _run(MULTICLASS, M_INFO, labels, preds)
  expected = float(keras.losses.SparseCategoricalCrossentropy()(
      np.array(labels), np.array(preds)))
  assert math.isfinite(r['log_loss'])
  assert r['log_loss'] == pytest.approx(expected, rel=1e-5)


def test_multiclass_macro_averages_over_the_classes_present():
  # Class 'c' never occurs; predicting it costs precision of nothing present.
  labels, preds = [0, 0, 1, 1], [[.8, .1, .1], [.1, .1, .8], [.1, .8, .1],
                                 [.1, .8, .1]]
  r = _run(MULTICLASS, M_INFO, labels, preds)
  predicted = np.array(preds).argmax(axis=1)
  assert r['macro_f1'] == pytest.approx(skm.f1_score(
      labels, predicted, labels=[0, 1], average='macro'))
  assert r['confusion_matrix'][2] == [0, 0, 0]


def test_multiclass_counts_unseen_classes_apart():
  r = _run(MULTICLASS, M_INFO, [0, -1, 1], [[.8, .1, .1], [.1, .8, .1],
                                             [.1, .8, .1]])
  assert r['unknown_class_count'] == 1.0
  assert r['example_count'] == 2.0 and r['accuracy'] == 1.0


# --------------------------------------------------------------------------
# Regression.

R_INFO = {'mean': 3.0, 'std': 2.0}
R_LABELS = [1.0, 2.5, 4.0, 3.5, 7.0, 0.5]
R_PREDS = [1.5, 2.0, 3.0, 4.0, 6.0, 1.5]


def test_regression_against_numpy_and_sklearn():
  r = _run(REGRESSION, R_INFO, R_LABELS, R_PREDS)
  _assert_complete(REGRESSION, r)
  y, p = np.array(R_LABELS), np.array(R_PREDS)
  assert r['example_count'] == 6.0
  assert r['rmse'] == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)))
  assert r['mae'] == pytest.approx(skm.mean_absolute_error(y, p))
  assert r['r2'] == pytest.approx(skm.r2_score(y, p))
  assert r['label_mean'] == pytest.approx(y.mean())
  assert r['label_std'] == pytest.approx(y.std())
  # The train mean (3.0) predicted for every row.
  trivial = np.full_like(y, 3.0)
  assert r['mean_rmse'] == pytest.approx(math.sqrt(
      skm.mean_squared_error(y, trivial)))
  assert r['mse_skill'] == pytest.approx(
      1 - skm.mean_squared_error(y, p) / skm.mean_squared_error(y, trivial))
  assert sorted(zip(r['sample_label'], r['sample_prediction'])) == sorted(
      zip(R_LABELS, R_PREDS))
  # Keras' own, as the Trainer's curves compute them.
  rmse = keras.metrics.RootMeanSquaredError()
  rmse.update_state(y, p)
  assert r['rmse'] == pytest.approx(float(rmse.result()), rel=1e-5)


def test_regression_is_exact_with_a_large_offset():
  # A target whose mean is huge against its spread (timestamps, prices).
  offset = 1e9
  r = _run(REGRESSION, {'mean': offset + 3.0}, [offset + v for v in R_LABELS],
           [offset + v for v in R_PREDS])
  assert r['r2'] == pytest.approx(skm.r2_score(R_LABELS, R_PREDS), rel=1e-6)
  assert r['label_std'] == pytest.approx(np.std(R_LABELS), rel=1e-6)


def test_regression_keeps_a_bounded_sample():
  n = regression.SAMPLE_PAIRS * 3
  labels = np.arange(n, dtype=float)
  r = _run(REGRESSION, R_INFO, labels, labels + 1)
  assert len(r['sample_label']) == regression.SAMPLE_PAIRS
  assert all(p == y + 1 for y, p in zip(r['sample_label'],
                                        r['sample_prediction']))


# --------------------------------------------------------------------------
# Merging: any split of the rows gives one big accumulator's result.


def _merged(task, info, labels, predictions, cuts):
  parts = np.split(np.arange(len(labels)), cuts)
  accs = [task.accumulator(info).add_batch(
      [np.atleast_1d(labels[i]) for i in idx],
      [np.atleast_1d(predictions[i]) for i in idx]) for idx in parts]
  first = accs[0]
  for other in accs[1:]:
    first.merge(other)
  return first.result()


@pytest.mark.parametrize('task_name', ['binary', 'multiclass', 'regression'])
def test_merge_equals_one_big_accumulator(task_name):
  rng = np.random.default_rng(7)
  n = 1000
  task = tasks.get(task_name)
  if task_name == 'binary':
    info = {'positive_rate': 0.3}
    labels = rng.integers(0, 2, n)
    predictions = rng.random(n)
  elif task_name == 'multiclass':
    info = M_INFO
    labels = rng.integers(0, 3, n)
    predictions = rng.dirichlet([1, 1, 1], n)
  else:
    info = R_INFO
    labels = rng.normal(3, 2, n)
    predictions = labels + rng.normal(0, 1, n)
  whole = _run(task, info, labels, predictions)
  merged = _merged(task, info, labels, predictions, [100, 550, 551])
  for name in task.gate_metric_names:
    assert merged[name] == pytest.approx(whole[name], rel=1e-9, abs=1e-12), name
  for name in task.gate_arrays:
    assert merged[name] == whole[name], name


# --------------------------------------------------------------------------
# Bootstrap replicates.

REPLICATES = 100


def _data(task_name, n=400, seed=3):
  rng = np.random.default_rng(seed)
  if task_name == 'binary':
    labels, predictions = rng.integers(0, 2, n), rng.random(n)
    predictions[:5] = [0.0, 1.0, 1e-9, 0.5, 0.9999999]  # Edges of the bins.
    return {'positive_rate': 0.3}, labels, predictions
  if task_name == 'multiclass':
    labels = rng.integers(0, 3, n)
    labels[:7] = -1  # Unseen classes are counted in every replicate too.
    return M_INFO, labels, rng.dirichlet([1, 1, 1], n)
  labels = rng.normal(3, 2, n)
  return R_INFO, labels, labels + rng.normal(0, 1, n)


def _keys(n, stream=0):
  return [base.bootstrap_key(f'example {i}'.encode(), stream)
          for i in range(n)]


def _bootstrapped(task, info, labels, predictions, keys, cuts=()):
  parts = np.split(np.arange(len(labels)), list(cuts))
  accs = [task.accumulator(info, REPLICATES).add_batch(
      [np.atleast_1d(labels[i]) for i in idx],
      [np.atleast_1d(predictions[i]) for i in idx], [keys[i] for i in idx])
          for idx in parts]
  for other in accs[1:]:
    accs[0].merge(other)
  return accs[0].result()


@pytest.mark.parametrize('task_name', ['binary', 'multiclass', 'regression'])
def test_each_replicate_is_the_statistic_of_a_poisson_resample(task_name):
  task = tasks.get(task_name)
  info, labels, predictions = _data(task_name)
  keys = _keys(len(labels))
  result = _bootstrapped(task, info, labels, predictions, keys)
  replicates = result[base.REPLICATES]
  assert set(replicates) == set(task.gate_metric_names)
  table = base.poisson_table(REPLICATES)
  columns = np.array(keys) % base.BOOTSTRAP_BUCKETS
  for b in (0, 1, 57):
    weights = table[b, columns].astype(int)
    # Replicate b: each row counted as often as its Poisson weight says.
    resampled = _run(task, info, np.repeat(labels, weights, axis=0),
                     np.repeat(predictions, weights, axis=0))
    for name in task.gate_metric_names:
      # AUC and PR-AUC are binned coarser in the replicates (and shifted
      # onto the point's binning).
      tolerance = {'auc': 2e-3, 'pr_auc': 5e-3}.get(name, 1e-9)
      assert replicates[name][b] == pytest.approx(
          resampled[name], rel=tolerance, abs=tolerance), (name, b)
  # Without replicates the point values are the same.
  plain = _run(task, info, labels, predictions)
  for name in task.gate_metric_names:
    assert result[name] == pytest.approx(plain[name], rel=1e-12), name


@pytest.mark.parametrize('task_name', ['binary', 'multiclass', 'regression'])
def test_replicates_merge_like_one_accumulator(task_name):
  task = tasks.get(task_name)
  info, labels, predictions = _data(task_name, n=1500)
  keys = _keys(len(labels))
  whole = _bootstrapped(task, info, labels, predictions, keys)
  merged = _bootstrapped(task, info, labels, predictions, keys,
                         cuts=[3, 700, 701, 1200])
  for name in task.gate_metric_names:
    np.testing.assert_allclose(merged[base.REPLICATES][name],
                               whole[base.REPLICATES][name], rtol=1e-9,
                               err_msg=name)


def test_replicates_need_each_examples_key():
  acc = BINARY.accumulator({'positive_rate': 0.5}, REPLICATES)
  with pytest.raises(ValueError, match='bootstrap key'):
    acc.add(np.array([1]), np.array([0.7]))


def test_the_poisson_table_and_keys_are_fixed_and_streams_disjoint():
  table = base.poisson_table(REPLICATES)
  assert table.shape == (REPLICATES, base.BOOTSTRAP_BUCKETS)
  # The same counts in every process and release (a fixed seed of numpy's
  # frozen legacy generator): a changed table would change every interval.
  assert table[0, :12].tolist() == [2, 0, 0, 2, 1, 1, 1, 1, 1, 3, 0, 1]
  assert table.sum() == 410008
  np.testing.assert_array_equal(base.poisson_table(2 * REPLICATES)[
      :REPLICATES], table)
  assert base.bootstrap_key(b'abc', 0) == 46451695055574410
  # The held-out rows (stream 0) and the train rows (stream 1) use
  # disjoint columns of the table: independent replicates.
  held = {base.bootstrap_key(r, 0) % base.BOOTSTRAP_BUCKETS
          for r in (b'a', b'b', b'c', b'd')}
  train = {base.bootstrap_key(r, 1) % base.BOOTSTRAP_BUCKETS
           for r in (b'a', b'b', b'c', b'd')}
  assert all(c % 2 == 0 for c in held) and all(c % 2 == 1 for c in train)
  assert all(base.bootstrap_key(bytes([i]) * 40, 1) < 2 ** 63
             for i in range(256))


def test_quality_check_replicates_follow_the_statistic():
  info, labels, predictions = _data('binary', n=2000)
  result = _bootstrapped(BINARY, info, labels, predictions,
                         _keys(len(labels)))
  replicates = result[base.REPLICATES]
  checks = {c.metric: c for c in BINARY.quality_checks(
      result, _gate('binary'), replicates)}
  majority = replicates['majority_accuracy']
  np.testing.assert_allclose(
      checks['accuracy_skill'].replicates,
      (replicates['accuracy'] - majority) / (1 - majority))
  assert checks['auc'].replicates.shape == (REPLICATES,)
  # Multiclass' unseen-class count is exact: no replicates.
  info, labels, predictions = _data('multiclass')
  result = _bootstrapped(MULTICLASS, info, labels, predictions,
                         _keys(len(labels)))
  checks = {c.metric: c for c in MULTICLASS.quality_checks(
      result, _gate('multiclass'), result[base.REPLICATES])}
  assert checks['known_classes'].exact
  assert checks['known_classes'].replicates is None
  # Regression's RMSE bound is against the train mean on the same resample.
  info, labels, predictions = _data('regression')
  result = _bootstrapped(REGRESSION, info, labels, predictions,
                         _keys(len(labels)))
  replicates = result[base.REPLICATES]
  [rmse] = [c for c in REGRESSION.quality_checks(
      result, _gate('regression'), replicates) if c.metric == 'rmse']
  np.testing.assert_allclose(
      rmse.replicates,
      replicates['rmse'] / replicates['mean_rmse'] * result['mean_rmse'])


def test_gaps_are_elementwise_on_replicates():
  rmse = REGRESSION.metrics['rmse']
  np.testing.assert_allclose(
      rmse.gap(np.array([10.0, 0.0, 0.0]), np.array([12.0, 0.0, 1.0])),
      [0.2, 0.0, math.inf])
  np.testing.assert_allclose(
      BINARY.metrics['log_loss'].gap(np.array([0.1, 0.2]),
                                     np.array([0.3, 0.2])), [0.2, 0.0])


# --------------------------------------------------------------------------
# Quality checks: the trivial predictor fails, a predictor with signal passes.


def _binary_data(rate, n=20_000, signal=2.0, seed=0):
  """Labels drawn from calibrated probabilities sigmoid(a + signal * x)
  whose mean is ``rate``: the probabilities are a model with real signal."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=n)
  lo, hi = -20.0, 5.0
  for _ in range(60):  # Bisection on the intercept for the positive rate.
    a = (lo + hi) / 2
    if np.mean(1 / (1 + np.exp(-(a + signal * x)))) > rate:
      hi = a
    else:
      lo = a
  p = 1 / (1 + np.exp(-(a + signal * x)))
  return (rng.random(n) < p).astype(int), p


@pytest.mark.parametrize('rate', [0.5, 0.2, 0.03])
def test_binary_quality_checks(rate):
  gate = _gate('binary')
  labels, model = _binary_data(rate)
  info = {'positive_rate': float(labels.mean())}
  good = BINARY.quality_checks(_run(BINARY, info, labels, model), gate)
  assert all(c.passed for c in good), [(c.metric, c.value) for c in good]
  prior = np.full(len(labels), info['positive_rate'])
  trivial = BINARY.quality_checks(_run(BINARY, info, labels, prior), gate)
  assert _passed(trivial) == {'accuracy_skill': True, 'log_loss_skill': False,
                              'auc': False, 'pr_auc_skill': False}


def test_binary_quality_check_values_at_3_percent_positives():
  labels, model = _binary_data(0.03)
  r = _run(BINARY, {'positive_rate': float(labels.mean())}, labels, model)
  checks = {c.metric: c for c in BINARY.quality_checks(r, _gate('binary'))}
  # Accuracy barely moves at 3% positives: the skills are what say "signal".
  assert r['accuracy'] == pytest.approx(r['majority_accuracy'], abs=0.01)
  assert checks['log_loss_skill'].value > 0.1
  assert checks['pr_auc_skill'].value > 0.1
  assert checks['auc'].value > 0.8


def test_multiclass_quality_checks():
  gate = _gate('multiclass')
  rng = np.random.default_rng(1)
  n, k = 5000, 3
  frequencies = np.array([0.6, 0.3, 0.1])
  logits = rng.normal(size=(n, k)) * 2 + np.log(frequencies)
  model = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  labels = np.array([rng.choice(k, p=row) for row in model])
  info = {'classes': ['a', 'b', 'c'], 'frequencies': frequencies.tolist()}
  good = MULTICLASS.quality_checks(_run(MULTICLASS, info, labels, model), gate)
  assert all(c.passed for c in good), [(c.metric, c.value) for c in good]
  prior = np.tile(frequencies, (n, 1))
  trivial = MULTICLASS.quality_checks(_run(MULTICLASS, info, labels, prior),
                                      gate)
  assert not _passed(trivial)['log_loss_skill']
  # An unseen class among the held-out rows fails on its own.
  unseen = MULTICLASS.quality_checks(_run(
      MULTICLASS, info, np.append(labels, -1),
      np.vstack([model, frequencies])), gate)
  assert _passed(unseen)['known_classes'] is False


def test_regression_quality_checks():
  gate = _gate('regression')
  rng = np.random.default_rng(2)
  x = rng.normal(size=5000)
  labels = 10 + 3 * x + rng.normal(size=5000)
  info = {'mean': float(labels.mean()), 'std': float(labels.std())}
  good = REGRESSION.quality_checks(
      _run(REGRESSION, info, labels, 10 + 3 * x), gate)
  assert all(c.passed for c in good), [(c.metric, c.value) for c in good]
  trivial = REGRESSION.quality_checks(
      _run(REGRESSION, info, labels, np.full(5000, info['mean'])), gate)
  assert _passed(trivial) == {'r2_skill': False, 'rmse': False}


def test_a_nan_quality_value_fails():
  check = base.QualityCheck('auc', float('nan'), 0.6, '>=', '')
  assert not check.passed
  check = base.QualityCheck('rmse', float('nan'), 1.0, '<=', '')
  assert not check.passed


# --------------------------------------------------------------------------
# Gaps.


def test_relative_gaps_for_rmse_and_absolute_for_r2():
  rmse, r2 = REGRESSION.metrics['rmse'], REGRESSION.metrics['r2']
  assert rmse.relative_gap and not r2.relative_gap
  assert rmse.gap(train=10.0, held_out=12.0) == pytest.approx(0.2)
  # The same overfit in other units: the same gap.
  assert rmse.gap(train=1000.0, held_out=1200.0) == pytest.approx(0.2)
  assert rmse.gap(train=10.0, held_out=9.0) == pytest.approx(-0.1)
  assert r2.gap(train=0.9, held_out=0.8) == pytest.approx(0.1)
  assert rmse.gap(train=0.0, held_out=0.0) == 0.0
  assert rmse.gap(train=0.0, held_out=1.0) == math.inf


def test_loss_gap_sign_is_flipped():
  assert BINARY.metrics['log_loss'].gap(train=0.1, held_out=0.3) == (
      pytest.approx(0.2))
  assert BINARY.metrics['auc'].gap(train=0.9, held_out=0.8) == (
      pytest.approx(0.1))
