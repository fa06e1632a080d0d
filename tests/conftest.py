"""Shared test setup: one Keras (tf_keras) and quiet logs, before TF loads."""

import os
import warnings

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
warnings.filterwarnings('ignore', category=FutureWarning)

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

# Further real runs of a capability that the default suite (``make test``,
# what CI runs) already covers end to end once; ``make test-all`` runs them
# too. Each line says which default test covers the capability.
EXTENDED = {
    'test_tasks_e2e.py::test_oversized_unregularized_model_is_refused_for_its_gap'
    '[imbalanced]': 'the gap refusal runs for multiclass',
    'test_tasks_e2e.py::test_oversized_unregularized_model_is_refused_for_its_gap'
    '[regression]': 'the gap refusal runs for multiclass',
    'test_distributed.py::test_multi_worker_two_processes_only_chief_exports'
    '[streamed]': 'MultiWorker runs in_memory; streaming input is in '
    'test_inputs.py',
    'test_distributed.py::test_tpu_without_tpu_fails_at_once_naming_the_'
    'address': 'test_strategy.py fails fast on an unreachable TPU, naming it',
    'test_distributed.py::test_interrupted_run_resumes_from_backup':
        'test_strategy.py resumes from the backup per strategy',
    'test_concurrent_runs.py::test_two_runs_at_once_share_a_serving_dir':
        'test_crash_safety.py runs two pushers of one serving dir at once',
    'test_regularization.py::test_the_cocktail_trains_on_two_replicas':
        'each technique is tested alone in test_regularization.py; the task '
        'heads train under Mirrored in test_task_heads.py',
    'test_tuning.py::test_budget_stops_the_search_and_trials_stop_early':
        'test_tuner_searches_and_trainer_uses_the_best runs the search',
    'test_distributed.py::test_multi_worker_trains_every_task[multiclass]':
        'MultiWorker runs binary; the task heads run under Mirrored in '
        'test_task_heads.py',
    'test_distributed.py::test_multi_worker_trains_every_task[regression]':
        'MultiWorker runs binary; the task heads run under Mirrored in '
        'test_task_heads.py',
    'test_kubeflow_local_executor.py::test_compiled_pipeline_runs_every_task'
    '[multiclass]': 'the compiled spec runs binary; every task compiles in '
    'test_kubeflow_compile.py',
    'test_kubeflow_local_executor.py::test_compiled_pipeline_runs_every_task'
    '[regression]': 'the compiled spec runs binary; every task compiles in '
    'test_kubeflow_compile.py',
    'test_tasks_e2e.py::test_oversized_unregularized_model_is_refused_for_its_gap'
    '[multiclass]': 'test_e2e.py refuses the oversized binary model for its '
    'gap; every task checks its gaps in test_gate_metrics.py',
    'test_tasks_e2e.py::test_prior_only_model_is_refused_for_quality'
    '[multiclass]': 'the quality refusal runs for the imbalanced binary task',
    'test_tasks_e2e.py::test_prior_only_model_is_refused_for_quality'
    '[regression]': 'the quality refusal runs for the imbalanced binary task',
    'test_cli_runs.py::test_a_model_worse_than_the_last_blessed_exits_3':
        'test_e2e.py blocks a weaker model on the baseline; the CLI exits 3 '
        'for a refused gap in test_stricter_gate_exits_3_and_runs_lists_both',
    'test_cli_runs.py::test_an_inconclusive_gap_exits_3':
        'the inconclusive verdict is decided in test_gate_decision.py; the CLI '
        'exits 3 for a refused gap in test_stricter_gate_exits_3_...',
    'test_cli_runs.py::test_another_dataset_in_the_same_output_root_has_no_'
    'baseline': 'test_gate_metrics.py::test_a_baseline_fed_other_features_is_'
    'not_comparable',
}


def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    name = f'{os.path.basename(item.location[0])}::{item.name}'
    if name in EXTENDED:
      item.add_marker(pytest.mark.extended)


@pytest.fixture
def beam_calls(monkeypatch):
  """Records each call of the stock Beam executor's Do and runs it (ingest
  tests: which inputs fall back to the Beam executor)."""
  # TFX only for the tests that ask: collecting the unit tests stays light.
  from tfx.components.example_gen import base_example_gen_executor  # pylint: disable=g-import-not-at-top
  calls = []
  original = base_example_gen_executor.BaseExampleGenExecutor.Do

  def spy(self, *args, **kwargs):
    calls.append(type(self).__name__)
    return original(self, *args, **kwargs)

  monkeypatch.setattr(base_example_gen_executor.BaseExampleGenExecutor, 'Do',
                      spy)
  return calls
