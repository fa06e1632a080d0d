"""The optional Tuner: search over regularization strengths, best values used.

Runs the real ``tuner_fn`` (KerasTuner random search on tf_keras models) on
the tiny Transform output of ``transformed_data``, then ``run_fn`` with the
Tuner's best hyperparameters, as TFX hands them over.
"""

import json
import os

import pytest

import distributed_fixtures as fixtures
from distributed_fixtures import transformed_data  # noqa: F401  (fixture)
from components.trainer import run as trainer_run
from components.trainer import tuning
from kubeflow.training import launch
from core import config as config_lib

pytestmark = pytest.mark.slow


def test_search_space_is_the_configured_grid():
  hp = tuning.search_space(config_lib.TuningConfig(l1=(0.0, 1e-4),
                                                   dropout=(0.0, 0.5)))
  names = {p.name: p.values for p in hp.space}
  assert names['l1'] == [0.0, 1e-4]
  assert names['dropout'] == [0.0, 0.5]
  assert set(names) == {'l1', 'l2', 'dropout', 'weight_decay'}


def test_best_values_override_regularization():
  reg = config_lib.RegularizationConfig(l2=1e-3, dropout=0.2, max_norm=3.0)
  tuned = trainer_run.regularization_with(
      reg, {'l2': 1e-5, 'dropout': 0.0, 'unrelated': 1})
  assert (tuned.l2, tuned.dropout, tuned.max_norm) == (1e-5, 0.0, 3.0)


def test_tuner_searches_and_trainer_uses_the_best(transformed_data, tmp_path):
  config = fixtures.small_config(**{
      'tuning.enabled': 'true', 'tuning.max_trials': '2', 'tuning.epochs': '1',
      'tuning.l2': '[0.0, 0.01]', 'tuning.dropout': '[0.0, 0.3]',
      'tuning.l1': '[0.0]', 'tuning.weight_decay': '[0.0]'})
  fn_args = launch.build_fn_args(
      examples=transformed_data['examples'],
      transform_graph=transformed_data['transform_graph'],
      model=str(tmp_path / 'model'), model_run=str(tmp_path / 'run'),
      config=config)
  fn_args.working_dir = str(tmp_path / 'tuner')
  fn_args.transform_graph_path = transformed_data['transform_graph']
  result = tuning.tuner_fn(fn_args)
  result.tuner.search(**result.fit_kwargs)
  trials = result.tuner.oracle.get_best_trials(num_trials=10)
  assert len(trials) == 2
  assert all(t.score is not None for t in trials)  # val_auc was measured.
  best = result.tuner.get_best_hyperparameters()[0]
  # As the TFX Tuner writes it and the Trainer receives it.
  fn_args.hyperparameters = best.get_config()
  trainer_run.run_fn(fn_args)
  with open(os.path.join(fn_args.model_run_dir, trainer_run.TRAINING_JSON)) as f:
    training = json.load(f)
  assert training['regularization']['l2'] == best.get('l2')
  assert training['regularization']['dropout'] == best.get('dropout')


@pytest.mark.parametrize('task, metric, direction', [
    ('binary', 'val_auc', 'max'), ('multiclass', 'val_log_loss', 'min'),
    ('regression', 'val_rmse', 'min')])
def test_objective_is_the_tasks_early_stopping_metric(task, metric, direction):
  config = config_lib.load_config(overrides=[
      f'task={task}', 'data.label=y', 'data.features={numeric: [a]}'])
  objective = tuning.objective(config)
  assert (objective.name, objective.direction) == (metric, direction)
  off = config_lib.load_config(overrides=[
      f'task={task}', 'data.label=y', 'data.features={numeric: [a]}',
      'regularization.early_stopping=null'])
  assert tuning.objective(off).name == metric  # The task's default.
