"""The gate's decision: quality, baseline and gap checks on given metrics, per
task.

First on point estimates (``bootstrap_replicates: 0``): what each check
computes. Then with intervals, on metrics the tasks' accumulators measure on
simulated data with bootstrap replicates: coverage, the verdicts a split's
size leads to, pairing, and every way a check could be skipped instead of
failed.
"""

import dataclasses
import json
import math

import numpy as np
import pytest

from components.gate import decision
from core import config as config_lib
from core import tasks
from core.tasks import base

BINARY, MULTICLASS, REGRESSION = (tasks.get('binary'), tasks.get('multiclass'),
                                  tasks.get('regression'))
NAN = float('nan')
# Binary gaps named explicitly where a test depends on which are checked.
BINARY_GAPS = {'accuracy': 0.03, 'auc': 0.03, 'log_loss': 0.05}


def gate(task, **overrides):
  """The gate section with the task's defaults, as the executor parses it,
  deciding on point estimates (the hand-written metrics carry no
  replicates). Permissive: tests isolate one check by opening the others."""
  return config_lib.parse_gate(
      {'bootstrap_replicates': 0, 'permissive': True, **overrides}, task.name)


def binary(accuracy, auc, log_loss, pr_auc=0.7, mean_label=0.225, count=3000):
  majority = max(mean_label, 1 - mean_label)
  m = min(max(mean_label, 1e-7), 1 - 1e-7)
  prior = -(mean_label * math.log(m) + (1 - mean_label) * math.log(1 - m))
  return {'accuracy': accuracy, 'auc': auc, 'pr_auc': pr_auc,
          'log_loss': log_loss, 'example_count': count,
          'mean_label': mean_label, 'majority_accuracy': majority,
          'prior_log_loss': prior,
          'pr_curve_precision': [1.0, 0.8, mean_label],
          'pr_curve_recall': [0.0, 0.5, 1.0]}


def multiclass(accuracy, macro_f1, log_loss, count=3000, unknown=0):
  return {'accuracy': accuracy, 'macro_f1': macro_f1, 'log_loss': log_loss,
          'balanced_accuracy': macro_f1, 'example_count': count,
          'unknown_class_count': unknown, 'majority_accuracy': 0.5,
          'prior_log_loss': 1.03,
          'class_recall': [0.9, 0.6, 0.4], 'class_frequency': [0.5, 0.3, 0.2],
          'confusion_matrix': [[9, 1, 0], [3, 6, 1], [4, 2, 4]]}


def regression(rmse, mae, r2, mean_rmse=10.0, count=3000):
  return {'rmse': rmse, 'mae': mae, 'r2': r2, 'example_count': count,
          'label_mean': 20.0, 'label_std': mean_rmse,
          'mean_rmse': mean_rmse, 'mse_skill': 1 - (rmse / mean_rmse) ** 2,
          'sample_label': [1.0, 2.0], 'sample_prediction': [1.5, 2.5]}


def overall(metrics):
  return {decision.OVERALL: metrics}


def test_a_binary_model_that_generalizes_is_blessed():
  result = decision.decide(BINARY, overall(binary(0.90, 0.95, 0.25)),
                           overall(binary(0.91, 0.955, 0.24)), None,
                           gate(BINARY))
  assert result.blessed, [c.describe() for c in result.failed]
  assert result.reason == 'all checks passed'
  assert {c.kind for c in result.checks} == {'quality', 'gap'}
  assert {c.metric for c in result.checks if c.kind == 'quality'} == {
      'accuracy_skill', 'log_loss_skill', 'auc', 'pr_auc_skill'}
  # The task's default gaps: accuracy, auc, log_loss.
  assert {c.metric for c in result.checks if c.kind == 'gap'} == set(
      BINARY.default_max_gap)


def test_the_prior_predictor_fails_binary_quality():
  # Predicting the prior everywhere: majority accuracy, AUC 0.5, PR-AUC the
  # positive rate, log loss the prior's.
  trivial = binary(0.775, 0.5, 0.0, pr_auc=0.225)
  trivial['log_loss'] = trivial['prior_log_loss']
  result = decision.decide(BINARY, overall(trivial), overall(trivial), None,
                           gate(BINARY))
  assert not result.blessed
  failed = {(c.kind, c.metric) for c in result.failed}
  assert failed == {('quality', 'log_loss_skill'), ('quality', 'auc'),
                    ('quality', 'pr_auc_skill')}


def test_an_overfit_model_fails_on_the_gap_only():
  result = decision.decide(BINARY, overall(binary(0.86, 0.90, 0.40)),
                           overall(binary(0.99, 0.999, 0.03)), None,
                           gate(BINARY, max_gap=BINARY_GAPS))
  assert not result.blessed
  assert result.reason == 'failed: gap'
  gaps = {c.metric: c.value for c in result.failed}
  assert gaps['accuracy'] == pytest.approx(0.13)
  assert gaps['log_loss'] == pytest.approx(0.37)  # Sign flipped for loss.


def test_max_gap_entries_replace_the_task_defaults_one_by_one():
  g = gate(BINARY, max_gap={'log_loss': 1.0, 'pr_auc': 0.01})
  result = decision.decide(BINARY, overall(binary(0.86, 0.90, 0.40, 0.6)),
                           overall(binary(0.87, 0.91, 0.03, 0.7)), None, g)
  gaps = {c.metric: c for c in result.checks if c.kind == 'gap'}
  assert set(gaps) == set(BINARY.default_max_gap) | {'log_loss', 'pr_auc'}
  assert gaps['log_loss'].passed and not gaps['pr_auc'].passed


def test_a_worse_candidate_than_the_blessed_model_fails_baseline():
  g = gate(BINARY)
  assert g.baseline_metric == 'auc'  # The task's default.
  baseline = binary(0.90, 0.95, 0.25)
  result = decision.decide(BINARY, overall(binary(0.90, 0.93, 0.26)),
                           overall(binary(0.90, 0.935, 0.26)), baseline, g)
  assert result.reason == 'failed: baseline'
  [check] = [c for c in result.checks if c.kind == 'baseline']
  # The candidate minus the blessed model, against minus the tolerance.
  assert check.value == pytest.approx(0.93 - 0.95)
  assert check.threshold == pytest.approx(-g.baseline_tolerance)
  assert check.comparison == '>='
  # Within tolerance passes.
  result = decision.decide(BINARY, overall(binary(0.90, 0.948, 0.26)),
                           overall(binary(0.90, 0.95, 0.26)), baseline, g)
  assert result.blessed
  assert result.to_dict()['metrics']['baseline']['auc'] == 0.95
  assert 'pr_curve_recall' not in result.to_dict()['metrics']['baseline']


def test_lower_is_better_baseline_metric_is_absolute_for_log_loss():
  g = gate(MULTICLASS)
  assert g.baseline_metric == 'log_loss'
  candidate = multiclass(0.8, 0.7, 0.60)
  result = decision.decide(MULTICLASS, overall(candidate), overall(candidate),
                           multiclass(0.8, 0.7, 0.55), g)
  [check] = [c for c in result.checks if c.kind == 'baseline']
  assert check.comparison == '<='
  assert check.value == pytest.approx(0.05)
  assert check.threshold == pytest.approx(g.baseline_tolerance)
  assert not check.passed


def test_rmse_baseline_tolerance_is_relative():
  g = gate(REGRESSION, baseline_tolerance=0.01)
  assert g.baseline_metric == 'rmse'
  held = regression(5.04, 4.0, 0.75)
  result = decision.decide(REGRESSION, overall(held), overall(held),
                           regression(5.0, 4.0, 0.75), g)
  [check] = [c for c in result.checks if c.kind == 'baseline']
  assert check.value == pytest.approx(5.04 / 5.0 - 1)
  assert check.threshold == pytest.approx(0.01)
  assert check.passed  # 0.8% worse, within 1%.
  held = regression(5.06, 4.0, 0.75)
  result = decision.decide(REGRESSION, overall(held), overall(held),
                           regression(5.0, 4.0, 0.75), g)
  assert result.reason == 'failed: baseline'


def test_regression_gaps_are_relative():
  g = gate(REGRESSION, max_gap={'rmse': 0.10, 'r2': 0.05})
  result = decision.decide(REGRESSION, overall(regression(5.25, 4.0, 0.72)),
                           overall(regression(5.0, 3.9, 0.75)), None, g)
  gaps = {c.metric: c for c in result.checks if c.kind == 'gap'}
  assert gaps['rmse'].value == pytest.approx(0.05)  # 5.25 / 5 - 1.
  assert gaps['r2'].value == pytest.approx(0.03)  # Absolute.
  assert result.blessed, [c.describe() for c in result.failed]
  # The same relative overfit at 1000 times the scale: the same verdict.
  result = decision.decide(
      REGRESSION, overall(regression(6000.0, 4000.0, 0.64, mean_rmse=1e4)),
      overall(regression(5000.0, 3900.0, 0.75, mean_rmse=1e4)), None, g)
  assert {(c.kind, c.metric) for c in result.failed} >= {('gap', 'rmse')}
  assert {c.metric: c.value for c in result.failed}['rmse'] == (
      pytest.approx(0.2))


def test_regression_quality_against_the_train_mean():
  g = gate(REGRESSION)
  result = decision.decide(REGRESSION, overall(regression(9.95, 8.0, 0.01)),
                           overall(regression(9.9, 8.0, 0.02)), None, g)
  assert {(c.kind, c.metric) for c in result.failed} == {
      ('quality', 'r2_skill'), ('quality', 'rmse')}


def test_multiclass_quality_and_unseen_classes():
  g = gate(MULTICLASS)
  good = multiclass(0.8, 0.7, 0.6)
  result = decision.decide(MULTICLASS, overall(good), overall(good), None, g)
  assert result.blessed, [c.describe() for c in result.failed]
  assert {c.metric for c in result.checks if c.kind == 'quality'} == {
      'known_classes', 'accuracy_skill', 'log_loss_skill'}
  unseen = multiclass(0.8, 0.7, 0.6, unknown=3)
  result = decision.decide(MULTICLASS, overall(unseen), overall(good), None, g)
  assert {(c.kind, c.metric) for c in result.failed} == {
      ('quality', 'known_classes')}


def test_slice_gaps_are_checked_on_large_enough_two_class_slices():
  g = gate(BINARY, slice_features=['payment_type'], slice_min_examples=100,
           max_gap=BINARY_GAPS)
  held_out = {'': binary(0.9, 0.95, 0.25),
              # All negative on the held-out side: AUC and PR-AUC undefined.
              'payment_type:Cash': binary(0.99, NAN, 0.05, pr_auc=NAN,
                                          mean_label=0.0),
              'payment_type:Credit Card': binary(0.70, 0.80, 0.55, 0.6, 0.6),
              'payment_type:Dispute': binary(0.5, 0.5, 0.7, 0.5, 0.5, count=3)}
  train = {'': binary(0.91, 0.955, 0.24),
           'payment_type:Cash': binary(0.99, 0.91, 0.05, mean_label=0.01),
           'payment_type:Credit Card': binary(0.85, 0.95, 0.35, 0.6, 0.6),
           'payment_type:Dispute': binary(1.0, 1.0, 0.0, 0.5, 0.5, count=3)}
  result = decision.decide(BINARY, held_out, train, None, g)
  assert not result.blessed
  # Cash holds one class on the held-out side: its AUC is undefined there,
  # and that fails the check rather than skipping it.
  assert {(c.slice, c.metric) for c in result.failed} == {
      ('payment_type:Credit Card', 'accuracy'),
      ('payment_type:Credit Card', 'auc'),
      ('payment_type:Credit Card', 'log_loss'),
      ('payment_type:Cash', 'auc')}
  # Too few held-out rows: not checked, and listed as such.
  assert not any(c.slice == 'payment_type:Dispute' for c in result.checks)
  assert result.to_dict()['unchecked_slices'] == [
      {'slice': 'payment_type:Dispute', 'held_out_rows': 3, 'train_rows': 3}]
  cash = {c.metric for c in result.checks if c.slice == 'payment_type:Cash'}
  assert cash == set(BINARY_GAPS)
  [card] = [c for c in result.checks if c.slice == 'payment_type:Credit Card'
            and c.metric == 'accuracy']
  assert card.threshold == g.slice_max_gap
  # Slices hold floats only; the arrays are the overall slice's.
  assert set(result.to_dict()['metrics']['held_out']) == set(held_out)
  assert set(result.to_dict()['arrays']['held_out']) == set(BINARY.gate_arrays)


@pytest.mark.parametrize('where', ['train', 'held_out', 'baseline'])
def test_a_nan_metric_fails_its_check_and_is_recorded(where):
  values = {'train': binary(0.91, 0.955, 0.24),
            'held_out': binary(0.90, 0.95, 0.25),
            'baseline': binary(0.90, 0.95, 0.25)}
  values[where]['auc'] = NAN
  result = decision.decide(BINARY, overall(values['held_out']),
                           overall(values['train']), values['baseline'],
                           gate(BINARY, max_gap=BINARY_GAPS))
  assert not result.blessed
  expected = {'train': {('gap', 'auc')},
              'held_out': {('quality', 'auc'), ('baseline', 'auc'),
                           ('gap', 'auc')},
              'baseline': {('baseline', 'auc')}}[where]
  assert {(c.kind, c.metric) for c in result.failed} == expected


def test_a_nan_regression_slice_value_fails_rather_than_being_skipped():
  g = gate(REGRESSION, slice_features=['zone'], slice_min_examples=10,
           max_gap={'r2': 0.05})
  held = {'': regression(5.0, 4.0, 0.75), 'zone:a': regression(5.0, 4.0, NAN)}
  train = {'': regression(5.0, 4.0, 0.75), 'zone:a': regression(5.0, 4.0, 0.7)}
  result = decision.decide(REGRESSION, held, train, None, g)
  assert {(c.kind, c.metric, c.slice) for c in result.failed} == {
      ('gap', 'r2', 'zone:a')}


def test_decision_serializes_as_gate_json():
  result = decision.decide(
      BINARY, overall(binary(0.86, 0.90, 0.40)),
      overall(binary(0.99, 0.999, 0.03)), None, gate(BINARY),
      baseline_note='baseline not comparable: trained for task regression')
  payload = json.loads(json.dumps(result.to_dict()))
  assert set(payload) == {'blessed', 'reason', 'failed_checks', 'task',
                          'checks', 'metrics', 'arrays', 'baseline_note',
                          'intervals', 'confidence', 'sizes', 'refusals',
                          'inconclusive_rules', 'unchecked_slices'}
  assert payload['blessed'] is False
  assert payload['task'] == 'binary'
  assert payload['failed_checks'] == ['gap']
  assert set(payload['checks'][0]) == {'kind', 'metric', 'slice', 'value',
                                       'threshold', 'comparison', 'passed',
                                       'detail', 'verdict', 'low', 'high',
                                       'rows_needed'}
  # On point estimates: no intervals, verdicts pass or fail.
  assert payload['intervals'] is None and payload['confidence'] is None
  assert {c['verdict'] for c in payload['checks']} == {'pass', 'fail'}
  assert payload['sizes'] == {'held_out': 3000, 'train': 3000}
  assert {c['metric'] for c in payload['checks'] if c['kind'] == 'gap'} == set(
      BINARY.default_max_gap)
  assert payload['metrics']['train']['']['accuracy'] == 0.99
  assert payload['metrics']['baseline'] is None
  assert payload['arrays']['train']['pr_curve_recall'] == [0.0, 0.5, 1.0]
  assert payload['baseline_note'].startswith('baseline not comparable')
  assert 'majority_rate' not in payload


def test_a_non_finite_check_value_reaches_the_metadata_store(tmp_path):
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2
  from tfx.types import standard_artifacts

  from components.gate import executor
  result = decision.decide(BINARY, overall(binary(0.90, 0.95, 0.25)),
                           overall(binary(0.91, 0.955, NAN)), None,
                           gate(BINARY, max_gap=BINARY_GAPS),
                           baseline_note='baseline not '
                           'comparable: no task.json')
  blessing, model = standard_artifacts.ModelBlessing(), standard_artifacts.Model()
  blessing.uri, model.uri = str(tmp_path / 'blessing'), str(tmp_path / 'model')
  executor.write_blessing(blessing, result, model, None)
  assert blessing.get_string_custom_property('gap_log_loss') == 'nan'
  assert blessing.get_float_custom_property('gap_accuracy') == pytest.approx(
      0.01)
  assert blessing.get_float_custom_property(
      'quality_auc') == pytest.approx(0.95)
  assert blessing.get_string_custom_property('task') == 'binary'
  assert blessing.get_string_custom_property('baseline_note').startswith(
      'baseline not comparable')
  assert (tmp_path / 'blessing' / 'NOT_BLESSED').exists()
  # SQLite MLMD stores it (it rejects a NaN double).
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(tmp_path / 'mlmd.sqlite')
  store = metadata_store.MetadataStore(config)
  [type_id] = [store.put_artifact_type(blessing.artifact_type)]
  blessing.mlmd_artifact.type_id = type_id
  store.put_artifacts([blessing.mlmd_artifact])


# --------------------------------------------------------------------------
# With intervals: metrics measured by the tasks' accumulators, with bootstrap
# replicates, on simulated rows.

REPLICATES = 200
HELD_OUT, TRAIN = 0, 1  # Bootstrap streams, as the executor assigns them.
# Only the accuracy gap decides in the gap tests below.
ACCURACY_GAP = {'accuracy': 0.03, 'auc': 1.0, 'log_loss': 1.0}


def interval_gate(task, **overrides):
  return config_lib.parse_gate({'permissive': True, **overrides}, task.name)


def _keys(n, stream, seed):
  return [base.bootstrap_key(f'row {seed} {i}'.encode(), stream)
          for i in range(n)]


def measured(task, info, labels, predictions, stream=HELD_OUT, seed=0,
             keys=None):
  """One side's flat metrics (with replicates), as the executor hands them
  over."""
  keys = _keys(len(labels), stream, seed) if keys is None else keys
  acc = task.accumulator(info, REPLICATES).add_batch(
      [np.atleast_1d(y) for y in labels],
      [np.atleast_1d(p) for p in predictions], keys)
  return base.flatten(acc.result())


def _sigmoid(z):
  return 1 / (1 + np.exp(-z))


def _binary_rows(rng, n):
  """Calibrated probabilities with real signal, and labels drawn from them."""
  p = _sigmoid(2.0 * rng.normal(size=n))
  return (rng.random(n) < p).astype(int), p


def _exact_accuracy_rows(rng, n, accuracy):
  """Balanced labels; the prediction is right (0.8 on the true class) on
  exactly ``round(accuracy * n)`` rows, so the point accuracy is fixed."""
  labels = rng.integers(0, 2, n)
  right = np.zeros(n, bool)
  right[rng.permutation(n)[:int(round(accuracy * n))]] = True
  predictions = np.where(right == (labels == 1), 0.8, 0.2)
  return labels, predictions


def _gap_decision(n, train_accuracy=0.95, held_out_accuracy=0.905, seed=0):
  rng = np.random.default_rng(seed)
  info = {'positive_rate': 0.5}
  held = measured(BINARY, info, *_exact_accuracy_rows(rng, n,
                                                      held_out_accuracy),
                  HELD_OUT, seed)
  train = measured(BINARY, info, *_exact_accuracy_rows(rng, n,
                                                       train_accuracy),
                   TRAIN, seed)
  result = decision.decide(BINARY, overall(held), overall(train), None,
                           interval_gate(BINARY, max_gap=ACCURACY_GAP))
  [check] = [c for c in result.checks if c.kind == 'gap'
             and c.metric == 'accuracy']
  return result, check


def _truth(name):
  """(task, info, sampler(rng, n) -> (labels, predictions), metric, true
  value) for the coverage test; true values from a million rows."""
  big = np.random.default_rng(12345)
  if name == 'binary accuracy' or name == 'binary auc':
    metric = name.split()[1]
    labels, p = _binary_rows(big, 1_000_000)
    true = (float(np.mean((p > 0.5) == (labels == 1))) if metric == 'accuracy'
            else _auc(labels, p))
    return BINARY, {'positive_rate': 0.5}, _binary_rows, metric, true
  if name == 'regression rmse':
    def sample(rng, n):
      x = rng.normal(size=n)
      return x + rng.normal(size=n), x
    return REGRESSION, {'mean': 0.0}, sample, 'rmse', 1.0  # Unit noise.

  def classes(rng, n):
    logits = rng.normal(size=(n, 3)) * 1.5
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    u = rng.random((n, 1))
    return (u > np.cumsum(p, axis=1)).sum(axis=1), p
  labels, p = classes(big, 1_000_000)
  return (MULTICLASS, {'classes': ['a', 'b', 'c'],
                       'frequencies': [1 / 3] * 3}, classes, 'accuracy',
          float(np.mean(p.argmax(axis=1) == labels)))


def _auc(labels, p):
  order = np.argsort(p)
  ranks = np.empty(len(p))
  ranks[order] = np.arange(1, len(p) + 1)
  positives = labels.sum()
  negatives = len(labels) - positives
  return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2)
               / (positives * negatives))


@pytest.mark.parametrize('name', ['binary accuracy', 'binary auc',
                                  'regression rmse', 'multiclass accuracy'])
def test_intervals_cover_the_true_value_at_about_the_nominal_rate(name):
  task, info, sample, metric, true = _truth(name)
  rng = np.random.default_rng(7)
  runs, covered = 200, 0
  for run in range(runs):
    values = measured(task, info, *sample(rng, 400), seed=run)
    low, high = base.percentile_interval(
        values[base.replicate_name(metric)], 0.95)
    covered += low <= true <= high
  # 95% nominal; 200 runs put the observed rate within 0.92..0.98 about
  # 95% of the time: 0.90..0.99 is more than 3 standard errors wide.
  assert 0.90 <= covered / runs <= 0.99, covered / runs


def test_gap_intervals_cover_a_true_gap_of_zero():
  # The same model on two independent samples of one population: the true
  # gap is 0, and its interval covers 0 at about the nominal rate.
  rng = np.random.default_rng(3)
  info = {'positive_rate': 0.5}
  g = interval_gate(BINARY, max_gap=ACCURACY_GAP)
  runs, covered = 100, 0
  for run in range(runs):
    held = measured(BINARY, info, *_binary_rows(rng, 400), HELD_OUT, run)
    train = measured(BINARY, info, *_binary_rows(rng, 400), TRAIN, run)
    result = decision.decide(BINARY, overall(held), overall(train), None, g)
    [check] = [c for c in result.checks if c.kind == 'gap'
               and c.metric == 'accuracy']
    covered += check.low <= 0.0 <= check.high
  assert 0.88 <= covered / runs <= 1.0, covered / runs


def test_a_real_but_small_gap_on_a_large_split_is_blocked():
  # Train accuracy 0.95 against 0.905 held out: a gap of 0.045 against
  # max_gap 0.03, measured on 20,000 rows a side.
  result, check = _gap_decision(20_000)
  assert check.value == pytest.approx(0.045)
  assert check.verdict == 'fail' and not check.passed
  assert check.threshold < check.low <= check.value <= check.high
  assert not result.blessed
  assert result.reason == 'failed: gap'


def test_the_same_gap_on_a_small_split_is_inconclusive_not_blessed():
  result, check = _gap_decision(1_000)
  assert check.value == pytest.approx(0.045)
  assert check.verdict == 'inconclusive'
  assert check.low < check.threshold < check.high
  # Narrower than the threshold: measurable, just not yet decided.
  assert (check.high - check.low) / 2 < check.threshold
  assert not check.passed and not result.blessed
  assert result.reason == 'inconclusive: gap'
  # The rows that would decide it at this variance: the lower end reaches
  # 0.03 once the half-width shrinks to 0.015.
  half = check.value - check.low
  assert check.rows_needed == math.ceil(1_000 * (half / 0.015) ** 2)
  assert check.rows_needed > 1_000
  assert f'{check.rows_needed:,} held-out rows' in check.describe()
  [saved] = [c for c in json.loads(json.dumps(result.to_dict()))['checks']
             if c['kind'] == 'gap' and c['metric'] == 'accuracy']
  assert saved['verdict'] == 'inconclusive'
  assert saved['rows_needed'] == check.rows_needed


def test_a_split_too_small_to_measure_the_threshold_is_refused():
  result, check = _gap_decision(150)
  assert check.verdict == 'refused'
  assert (check.high - check.low) / 2 > check.threshold
  assert not result.blessed
  assert result.reason.startswith('refused: gap')
  [message] = [m for m in result.refusals if m == check.detail]
  assert 'held-out split (150 rows)' in message
  assert 'train sample (150 rows)' in message
  assert 'too small to measure it against 0.03' in message
  assert result.to_dict()['refusals'] == result.refusals


@pytest.mark.parametrize('seed,point_passes', [(0, True), (1, False)])
def test_inconclusive_quality_is_decided_by_the_point_estimate_by_default(
    seed, point_passes):
  # A weak model on 300 rows: AUC 0.608 (seed 0) or 0.584 (seed 1), both
  # with intervals across min_auc 0.6.
  rng = np.random.default_rng(seed)
  x = rng.normal(size=300)
  labels = (rng.random(300) < _sigmoid(0.3 * x)).astype(int)
  held = measured(BINARY, {'positive_rate': 0.5}, labels, _sigmoid(0.3 * x))
  train = measured(BINARY, {'positive_rate': 0.5}, labels, _sigmoid(0.3 * x),
                   TRAIN)
  relaxed = {'min_log_loss_skill': -1.0, 'min_pr_auc_skill': -1.0,
             'min_accuracy_skill': -1.0, 'max_gap': {
                 'accuracy': 0.5, 'auc': 0.5, 'log_loss': 0.5}}
  result = decision.decide(BINARY, overall(held), overall(train), None,
                           interval_gate(BINARY, **relaxed))
  [auc] = [c for c in result.checks if c.metric == 'auc'
           and c.kind == 'quality']
  assert auc.verdict == 'inconclusive' and auc.low < 0.6 < auc.high
  assert (auc.value >= 0.6) == point_passes
  assert auc.passed == point_passes and result.blessed == point_passes
  if not point_passes:
    # Stopped by its point estimate: a failure, as without intervals.
    assert result.reason == 'failed: quality'
  blocked = decision.decide(BINARY, overall(held), overall(train), None,
                            interval_gate(BINARY, inconclusive_quality='block',
                                          **relaxed))
  assert not blocked.blessed
  assert blocked.reason == 'inconclusive: quality'


def _correlated_models(n=3000, seed=11):
  """Labels, a candidate and a baseline whose predictions share most of
  their errors (two fits of one model)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=n)
  labels = (rng.random(n) < _sigmoid(2 * x)).astype(int)
  shared = rng.normal(size=n)
  candidate = _sigmoid(2 * x + 0.8 * shared + 0.1 * rng.normal(size=n))
  baseline = _sigmoid(2 * x + 0.8 * shared + 0.1 * rng.normal(size=n))
  return labels, candidate, baseline


def _baseline_check(labels, candidate, baseline, baseline_keys_stream):
  info = {'positive_rate': 0.5}
  keys = _keys(len(labels), HELD_OUT, 0)
  held = measured(BINARY, info, labels, candidate, keys=keys)
  other = (keys if baseline_keys_stream == HELD_OUT
           else _keys(len(labels), baseline_keys_stream, 99))
  blessed = measured(BINARY, info, labels, baseline, keys=other)
  train = measured(BINARY, info, labels, candidate, TRAIN)
  result = decision.decide(BINARY, overall(held), overall(train), blessed,
                           interval_gate(BINARY, baseline_tolerance=0.02))
  [check] = [c for c in result.checks if c.kind == 'baseline']
  return check


def test_the_paired_baseline_difference_is_narrower_than_an_unpaired_one():
  labels, candidate, baseline = _correlated_models()
  paired = _baseline_check(labels, candidate, baseline, HELD_OUT)
  # The same models with the baseline's weights drawn independently: what
  # comparing two separately bootstrapped intervals amounts to.
  unpaired = _baseline_check(labels, candidate, baseline, TRAIN)
  assert paired.value == pytest.approx(unpaired.value)
  assert paired.low <= paired.value <= paired.high
  assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)


def test_a_candidate_identical_to_its_baseline_passes_exactly():
  labels, candidate, _ = _correlated_models(n=500)
  check = _baseline_check(labels, candidate, candidate, HELD_OUT)
  assert (check.low, check.value, check.high) == (0.0, 0.0, 0.0)
  assert check.verdict == 'pass'


def _interval_sides(n=3000):
  rng = np.random.default_rng(2)
  info = {'positive_rate': 0.5}
  held = measured(BINARY, info, *_binary_rows(rng, n), HELD_OUT)
  train = measured(BINARY, info, *_binary_rows(rng, n), TRAIN)
  return held, train


def test_a_baseline_that_yields_no_metrics_blocks():
  held, train = _interval_sides()
  g = interval_gate(BINARY)
  assert decision.decide(BINARY, overall(held), overall(train), None,
                         g).blessed
  result = decision.decide(BINARY, overall(held), overall(train), {}, g)
  [check] = [c for c in result.checks if c.kind == 'baseline']
  assert check.verdict == 'refused' and not check.passed
  assert 'yielded no metrics' in check.detail
  assert not result.blessed and result.reason == 'refused: baseline'


def test_missing_replicates_nan_and_infinite_values_are_never_skipped():
  held, train = _interval_sides()
  g = interval_gate(BINARY)
  # Replicates configured but absent: refused, never decided on the point.
  bare = {k: v for k, v in held.items() if not k.endswith('@replicates')}
  result = decision.decide(BINARY, overall(bare), overall(train), None, g)
  assert not result.blessed
  assert {c.verdict for c in result.checks if c.kind == 'quality'} == {
      'refused'}
  # A statistic undefined on some replicates: refused, saying how many.
  broken = dict(held)
  replicates = np.array(held[base.replicate_name('auc')])
  replicates[:3] = np.nan
  broken[base.replicate_name('auc')] = replicates
  result = decision.decide(BINARY, overall(broken), overall(train), None, g)
  [auc] = [c for c in result.checks if c.kind == 'quality'
           and c.metric == 'auc']
  assert auc.verdict == 'refused' and 'undefined on 3 of 200' in auc.detail
  # An infinite point value: fails.
  result = decision.decide(BINARY, overall(dict(held, log_loss=math.inf)),
                           overall(train), None, g)
  assert {(c.kind, c.metric) for c in result.failed} >= {
      ('quality', 'log_loss_skill'), ('gap', 'log_loss')}
  assert all(c.verdict == 'fail' for c in result.failed)


def test_a_slice_missing_on_one_side_and_an_empty_gap_set_are_refused():
  held, train = _interval_sides()
  g = interval_gate(BINARY, slice_features=['zone'], slice_min_examples=100)
  # The slice has held-out rows but none in the train sample.
  result = decision.decide(BINARY, {'': held, 'zone:a': held},
                           {'': train}, None, g)
  zone = [c for c in result.checks if c.slice == 'zone:a']
  assert {c.metric for c in zone} == set(g.max_gap)
  assert all(c.verdict == 'refused' for c in zone)
  assert 'but 0 in the train sample' in zone[0].detail
  assert not result.blessed
  # A gap metric measured on one side only.
  result = decision.decide(
      BINARY, overall(held),
      overall({k: v for k, v in train.items() if not k.startswith('auc')}),
      None, g)
  [auc] = [c for c in result.checks if c.kind == 'gap' and c.metric == 'auc']
  assert auc.verdict == 'refused' and 'train sample' in auc.detail
  # No gap checks at all.
  result = decision.decide(BINARY, overall(held), overall(train), None,
                           dataclasses.replace(g, max_gap={}))
  [gap] = [c for c in result.checks if c.kind == 'gap']
  assert gap.verdict == 'refused' and 'no gap checks' in gap.detail
  assert not result.blessed
  # No held-out metrics at all.
  result = decision.decide(BINARY, {}, overall(train), None, g)
  assert not result.blessed and 'held-out split yielded no metrics' in (
      result.refusals[0])


def test_gate_json_carries_every_interval():
  held, train = _interval_sides()
  rng = np.random.default_rng(4)
  blessed = measured(BINARY, {'positive_rate': 0.5}, *_binary_rows(rng, 3000))
  result = decision.decide(BINARY, overall(held), overall(train), blessed,
                           interval_gate(BINARY))
  payload = json.loads(json.dumps(result.to_dict()))
  assert payload['confidence'] == 0.95
  for side in ('held_out', 'train'):
    intervals = payload['intervals'][side]['']
    assert set(intervals) == set(BINARY.gate_metric_names)
    low, high = intervals['accuracy']
    assert low < payload['metrics'][side]['']['accuracy'] < high
  assert set(payload['intervals']['baseline']) == set(
      BINARY.gate_metric_names)
  for check in payload['checks']:
    assert check['verdict'] in ('pass', 'fail', 'inconclusive', 'refused')
    if check['metric'] != 'known_classes':
      assert check['low'] <= check['value'] <= check['high'], check
  # The metrics themselves stay floats (the report reads them).
  assert all(isinstance(v, float)
             for v in payload['metrics']['held_out'][''].values())


def test_a_slice_too_small_to_measure_is_refused_naming_its_sizes():
  held, train = _interval_sides()
  rng = np.random.default_rng(8)
  info = {'positive_rate': 0.5}
  # No gap in the slice, measured on about 200 rows a side.
  small = {'': held, 'zone:a': measured(
      BINARY, info, *_exact_accuracy_rows(rng, 220, 0.9), HELD_OUT, 1)}
  small_train = {'': train, 'zone:a': measured(
      BINARY, info, *_exact_accuracy_rows(rng, 210, 0.9), TRAIN, 1)}
  g = interval_gate(BINARY, slice_features=['zone'], slice_min_examples=200,
                    slice_max_gap=0.02)
  result = decision.decide(BINARY, small, small_train, None, g)
  zone = {c.metric: c for c in result.checks if c.slice == 'zone:a'}
  assert zone['accuracy'].verdict == 'refused'
  assert ('slice zone:a of the held-out split (220 rows) and of the train '
          'sample (210 rows)') in zone['accuracy'].detail
  assert not result.blessed and result.reason.startswith('refused: gap')
