"""The gate's decision: quality, baseline and gap checks on given metrics."""

import pytest

from components.gate import decision
from pipeline import config as config_lib

GATE = config_lib.GateConfig()


def metrics(accuracy, auc, log_loss, mean_label=0.225, count=3000):
  return {'accuracy': accuracy, 'auc': auc, 'log_loss': log_loss,
          'mean_label': mean_label, 'example_count': count}


def test_a_model_that_generalizes_is_blessed():
  result = decision.decide({'': metrics(0.90, 0.95, 0.25)},
                           {'': metrics(0.91, 0.955, 0.24)}, None, GATE)
  assert result.blessed, [c.describe() for c in result.failed]
  assert result.reason == 'all checks passed'
  assert {c.kind for c in result.checks} == {'quality', 'gap'}


def test_the_majority_class_predictor_fails_quality():
  # Always predicting 0 scores 1 - mean_label and AUC 0.5.
  result = decision.decide({'': metrics(0.775, 0.5, 0.53)},
                           {'': metrics(0.775, 0.5, 0.53)}, None, GATE)
  assert not result.blessed
  assert result.majority_rate == pytest.approx(0.775)
  failed = {(c.kind, c.metric) for c in result.failed}
  assert failed == {('quality', 'accuracy'), ('quality', 'auc')}


def test_majority_rate_uses_the_larger_class():
  result = decision.decide({'': metrics(0.86, 0.9, 0.3, mean_label=0.8)},
                           {'': metrics(0.86, 0.9, 0.3, mean_label=0.8)},
                           None, GATE)
  accuracy_check = result.checks[0]
  assert accuracy_check.threshold == pytest.approx(0.8 + GATE.accuracy_margin)
  assert accuracy_check.passed


def test_an_overfit_model_fails_on_the_gap_only():
  result = decision.decide({'': metrics(0.86, 0.90, 0.40)},
                           {'': metrics(0.99, 0.999, 0.03)}, None, GATE)
  assert not result.blessed
  assert result.reason == 'failed: gap'
  gaps = {c.metric: c.value for c in result.failed}
  assert gaps['accuracy'] == pytest.approx(0.13)
  assert gaps['log_loss'] == pytest.approx(0.37)  # Sign flipped for loss.


def test_loss_gap_sign_is_flipped():
  assert decision.gap('log_loss', train=0.1, held_out=0.3) == pytest.approx(0.2)
  assert decision.gap('auc', train=0.9, held_out=0.8) == pytest.approx(0.1)


def test_a_worse_candidate_than_the_blessed_model_fails_baseline():
  baseline = metrics(0.90, 0.95, 0.25)
  result = decision.decide({'': metrics(0.90, 0.93, 0.26)},
                           {'': metrics(0.90, 0.935, 0.26)}, baseline, GATE)
  assert result.reason == 'failed: baseline'
  # Within tolerance passes.
  result = decision.decide({'': metrics(0.90, 0.948, 0.26)},
                           {'': metrics(0.90, 0.95, 0.26)}, baseline, GATE)
  assert result.blessed


def test_lower_is_better_baseline_metric():
  gate = config_lib.GateConfig(baseline_metric='log_loss')
  result = decision.decide({'': metrics(0.90, 0.95, 0.30)},
                           {'': metrics(0.90, 0.95, 0.30)},
                           metrics(0.90, 0.95, 0.25), gate)
  assert result.reason == 'failed: baseline'


def test_slice_gaps_are_checked_on_large_enough_slices():
  gate = config_lib.GateConfig(slice_features=('payment_type',),
                               slice_min_examples=100)
  held_out = {'': metrics(0.9, 0.95, 0.25),
              'payment_type:Cash': metrics(0.99, 0.9, 0.05, mean_label=0.01),
              'payment_type:Credit Card': metrics(0.70, 0.80, 0.55, 0.6),
              'payment_type:Dispute': metrics(0.5, 0.5, 0.7, 0.5, count=3)}
  train = {'': metrics(0.91, 0.955, 0.24),
           'payment_type:Cash': metrics(0.99, 0.91, 0.05, mean_label=0.01),
           'payment_type:Credit Card': metrics(0.85, 0.95, 0.35, 0.6),
           'payment_type:Dispute': metrics(1.0, 1.0, 0.0, 0.5, count=3)}
  result = decision.decide(held_out, train, None, gate)
  assert not result.blessed
  assert {c.slice for c in result.failed} == {'payment_type:Credit Card'}
  assert not any(c.slice == 'payment_type:Dispute' for c in result.checks)


def test_decision_serializes_with_every_number():
  result = decision.decide({'': metrics(0.86, 0.90, 0.40)},
                           {'': metrics(0.99, 0.999, 0.03)}, None, GATE)
  payload = result.to_dict()
  assert payload['blessed'] is False
  assert payload['failed_checks'] == ['gap']
  assert {c['metric'] for c in payload['checks'] if c['kind'] == 'gap'} == {
      'accuracy', 'auc', 'log_loss'}
  assert payload['metrics']['train']['']['accuracy'] == 0.99


def test_a_nan_metric_fails_its_check_and_is_recorded():
  # E.g. a log loss that is not finite: the check fails, it never passes.
  nan = float('nan')
  result = decision.decide({'': metrics(0.90, 0.95, 0.25)},
                           {'': metrics(0.91, 0.955, nan)}, None, GATE)
  assert not result.blessed
  assert {(c.kind, c.metric) for c in result.failed} == {('gap', 'log_loss')}


def test_a_non_finite_check_value_reaches_the_metadata_store(tmp_path):
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2
  from tfx.types import standard_artifacts

  from components.gate import executor
  result = decision.decide({'': metrics(0.90, 0.95, 0.25)},
                           {'': metrics(0.91, 0.955, float('nan'))}, None,
                           GATE)
  blessing, model = standard_artifacts.ModelBlessing(), standard_artifacts.Model()
  blessing.uri, model.uri = str(tmp_path / 'blessing'), str(tmp_path / 'model')
  executor.write_blessing(blessing, result, model, None)
  assert blessing.get_string_custom_property('gap_log_loss') == 'nan'
  assert blessing.get_float_custom_property('gap_accuracy') == pytest.approx(
      0.01)
  # SQLite MLMD stores it (it rejects a NaN double).
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(tmp_path / 'mlmd.sqlite')
  store = metadata_store.MetadataStore(config)
  [type_id] = [store.put_artifact_type(blessing.artifact_type)]
  blessing.mlmd_artifact.type_id = type_id
  store.put_artifacts([blessing.mlmd_artifact])
