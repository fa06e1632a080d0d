"""The gate's decision: quality, baseline and gap checks on given metrics, per
task."""

import json
import math

import pytest

from components.gate import decision
from core import config as config_lib
from core import tasks

BINARY, MULTICLASS, REGRESSION = (tasks.get('binary'), tasks.get('multiclass'),
                                  tasks.get('regression'))
NAN = float('nan')
# Binary gaps named explicitly where a test depends on which are checked.
BINARY_GAPS = {'accuracy': 0.03, 'auc': 0.03, 'log_loss': 0.05}


def gate(task, **overrides):
  """The gate section with the task's defaults, as the executor parses it."""
  return config_lib.parse_gate(overrides, task.name)


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
  assert check.threshold == pytest.approx(0.95 - g.baseline_tolerance)
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
  assert check.threshold == pytest.approx(0.55 + g.baseline_tolerance)
  assert not check.passed


def test_rmse_baseline_tolerance_is_relative():
  g = gate(REGRESSION, baseline_tolerance=0.01)
  assert g.baseline_metric == 'rmse'
  held = regression(5.04, 4.0, 0.75)
  result = decision.decide(REGRESSION, overall(held), overall(held),
                           regression(5.0, 4.0, 0.75), g)
  [check] = [c for c in result.checks if c.kind == 'baseline']
  assert check.threshold == pytest.approx(5.0 * 1.01)
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
  assert {c.slice for c in result.failed} == {'payment_type:Credit Card'}
  assert not any(c.slice == 'payment_type:Dispute' for c in result.checks)
  cash = {c.metric for c in result.checks if c.slice == 'payment_type:Cash'}
  assert cash == {'accuracy', 'log_loss'}
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
                          'checks', 'metrics', 'arrays', 'baseline_note'}
  assert payload['blessed'] is False
  assert payload['task'] == 'binary'
  assert payload['failed_checks'] == ['gap']
  assert set(payload['checks'][0]) == {'kind', 'metric', 'slice', 'value',
                                       'threshold', 'comparison', 'passed',
                                       'detail'}
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
