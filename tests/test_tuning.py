"""The optional Tuner: search over regularization strengths, best values used.

The slow tests run the real ``tuner_fn`` (KerasTuner Bayesian optimization on
tf_keras models) on the tiny Transform output of ``transformed_data``, then
``run_fn`` with the Tuner's best hyperparameters, as TFX hands them over; the
others check its parts (the space, the first trial, the ranking) alone.
"""

import json
import os
import time
import types

import keras_tuner
import numpy as np

import pytest

import distributed_fixtures as fixtures
from distributed_fixtures import transformed_data  # noqa: F401  (fixture)
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_component_specs

from components.trainer import run as trainer_run
from components.trainer import tuning
from kubeflow.training import launch
from core import config as config_lib
from core import tasks
from pipeline import metadata, report
from pipeline.factory import NodeIds

TUNING = config_lib.TuningConfig()


def test_search_space_covers_the_cocktail_width_depth_rate_and_embedding():
  hp = tuning.search_space(config_lib.TuningConfig(max_width=128, max_depth=2))
  space = {p.name: p for p in hp.space}
  assert set(space) == {
      'use_l2', 'l2', 'use_weight_decay', 'weight_decay', 'dropout',
      'batch_norm', 'input_noise', 'use_mixup', 'mixup', 'lr_schedule',
      'learning_rate', 'width', 'depth', 'periodic_embedding',
      'periodic_sigma'}
  assert (space['width'].min_value, space['width'].max_value) == (32, 128)
  assert (space['depth'].min_value, space['depth'].max_value) == (1, 2)
  assert space['dropout'].max_value == 0.5
  assert space['input_noise'].max_value == 0.3
  assert (space['mixup'].min_value, space['mixup'].max_value) == (0.1, 0.4)
  assert space['lr_schedule'].values == ['constant', 'cosine', 'one_cycle']
  for name in ('l2', 'weight_decay', 'learning_rate', 'periodic_sigma'):
    assert space[name].sampling == 'log'
  assert (space['periodic_sigma'].min_value,
          space['periodic_sigma'].max_value) == (0.01, 1.0)
  assert (space['learning_rate'].min_value,
          space['learning_rate'].max_value) == (1e-4, 1e-2)


def test_config_with_applies_model_and_typed_regularization_values():
  cfg = config_lib.load_config(overrides=[
      'data.label=y', 'data.features={numeric: [a]}', 'regularization.l2=0.01'])
  tuned = trainer_run.config_with(cfg, {
      'use_l2': False, 'l2': 1e-4, 'batch_norm': True, 'lr_schedule': 'cosine',
      'use_mixup': True, 'mixup': 0.2, 'width': 96, 'depth': 3,
      'learning_rate': 1e-3, 'dropout': 0.25})
  reg = tuned.regularization
  assert (reg.l2, reg.batch_norm, reg.lr_schedule, reg.mixup, reg.dropout) == (
      0.0, True, 'cosine', 0.2, 0.25)
  assert tuned.model.hidden_units == (96, 96, 96)
  assert tuned.model.learning_rate == 1e-3
  assert tuned.model.numeric_embedding is None
  assert trainer_run.config_with(cfg, {}) == cfg
  embedded = trainer_run.config_with(
      cfg, {'periodic_embedding': True, 'periodic_sigma': 0.03})
  assert embedded.model.numeric_embedding == (
      config_lib.PeriodicEmbeddingConfig(sigma=0.03))
  assert trainer_run.config_with(
      embedded, {'periodic_embedding': False}).model.numeric_embedding is None


@pytest.mark.parametrize('overrides', [
    [],
    ['model.hidden_units=[512, 128, 64, 32]', 'model.learning_rate=0.05',
     'regularization.l2=0', 'regularization.weight_decay=0.02',
     'regularization.mixup=0.3', 'regularization.lr_schedule=one_cycle',
     'regularization.batch_norm=true', 'regularization.input_noise=0.1',
     'regularization.l1=1e-4'],
    ['model.numeric_embedding={frequencies: 8, sigma: 0.5}']])
def test_the_configured_values_give_the_configuration_back(overrides):
  cfg = config_lib.load_config(overrides=[
      'data.label=y', 'data.features={numeric: [a]}', *overrides])
  space = tuning.search_space(cfg.tuning)
  values = tuning.configured_values(cfg, space)
  assert trainer_run.config_with(cfg, values) == cfg
  # Every value of the space, and each one it can hold (the optimizer
  # places the trial by them); width and depth the nearest it has.
  assert {hp.name for hp in space.space} <= set(values)
  for hp in space.space:
    if isinstance(hp, keras_tuner.engine.hyperparameters.Choice):
      assert values[hp.name] in hp.values
    elif isinstance(hp, keras_tuner.engine.hyperparameters.Boolean):
      assert isinstance(values[hp.name], bool)
  width, depth = cfg.model.hidden_units[0], len(cfg.model.hidden_units)
  assert values['width'] == min(width, cfg.tuning.max_width)
  assert values['depth'] == min(depth, cfg.tuning.max_depth)


def test_the_first_trial_is_the_configuration_then_the_search_moves(tmp_path):
  cfg = config_lib.load_config(overrides=[
      'data.label=y', 'data.features={numeric: [a]}'])
  space = tuning.search_space(cfg.tuning)
  first = tuning.configured_values(cfg, space)
  oracle = tuning.ConfiguredFirstOracle(
      first=first, objective=tuning.objective(cfg), max_trials=4,
      num_initial_points=2, seed=1, hyperparameters=space)
  oracle._set_project_dir(str(tmp_path), 'search')  # pylint: disable=protected-access
  seen = []
  for i in range(3):
    trial = oracle.create_trial(f'tuner{i}')
    seen.append(dict(trial.hyperparameters.values))
    oracle.update_trial(trial.trial_id, {'val_auc': 0.8 + 0.01 * i})
    oracle.end_trial(trial)
  assert seen[0] == first
  assert trainer_run.config_with(cfg, seen[0]) == cfg
  # Later trials are the optimizer's (random first, then the Gaussian
  # process), each from the space alone.
  assert all('hidden_units' not in v and v != first for v in seen[1:])


def test_trials_json_is_copied_into_the_tuner_results_artifact(tmp_path):
  from tfx import types
  from tfx.types import standard_component_specs
  src = tmp_path / 'work' / tuning.TRIALS_JSON
  src.parent.mkdir()
  src.write_text('[{"trial_id": "0", "score": 0.7, "gap": 0.01}]')
  artifact = types.standard_artifacts.TunerResults()
  artifact.uri = str(tmp_path / 'results')
  os.makedirs(artifact.uri)
  fake = type('Fake', (), {'trials_path': str(src)})()
  dst = tuning.copy_trials(
      fake, {standard_component_specs.TUNER_RESULTS_KEY: [artifact]})
  assert dst == os.path.join(artifact.uri, 'trials.json')
  assert json.load(open(dst))[0]['gap'] == 0.01


@pytest.mark.parametrize('key', ['budget_minutes', 'gap_fraction'])
@pytest.mark.parametrize('value', ['0', '-1', 'nan'])
def test_budget_and_gap_fraction_must_be_positive(key, value):
  with pytest.raises(config_lib.ConfigError, match=f'tuning.{key}'):
    config_lib.load_config(overrides=[
        'data.label=y', 'data.features={numeric: [a]}',
        f'tuning.{key}={value}'])


def test_gap_excess_counts_the_worst_gap_in_units_of_its_limit():
  limits = {'accuracy': 0.03, 'auc': 0.03, 'log_loss': 0.05}
  assert tuning.gap_excess({'accuracy': 0.01, 'auc': 0.015}, limits, 0.5) == 0
  # accuracy 0.03 is a whole limit, 0.5 past the allowance; log loss less.
  assert tuning.gap_excess({'accuracy': 0.03, 'log_loss': 0.04, 'pr_auc': 9},
                           limits, 0.5) == pytest.approx(0.5)
  assert tuning.gap_excess({'accuracy': float('nan')}, limits, 0.5) == (
      tuning.MAX_EXCESS)
  assert tuning.gap_excess({'rmse': float('inf')}, {'rmse': 0.1}, 0.5) == (
      tuning.MAX_EXCESS)
  assert tuning.gap_excess({'auc': 0.02}, {'auc': 0.0}, 0.5) == 0


def test_ranked_score_is_worse_by_the_excess_in_the_objectives_units():
  binary, regression = tasks.get('binary'), tasks.get('regression')
  auc, log_loss = binary.metrics['auc'], binary.metrics['log_loss']
  rmse = regression.metrics['rmse']
  assert tuning.ranked_score(auc, 0.95, 0.0, 0.03) == 0.95
  assert tuning.ranked_score(auc, 0.95, 0.5, 0.03) == pytest.approx(0.935)
  assert tuning.ranked_score(log_loss, 0.2, 0.5, 0.05) == pytest.approx(0.225)
  # RMSE's gap is relative, and so is its penalty.
  assert tuning.ranked_score(rmse, 17.0, 0.5, 0.1) == pytest.approx(17.85)
  assert tuning.ranked_score(auc, 0.95, 0.5, None) == 0.95


def test_the_chosen_trial_is_the_best_the_gate_would_likely_bless():
  def trial(ranked, excess, status='COMPLETED'):
    return {'score': ranked, 'ranked': ranked, 'excess': excess,
            'status': status}
  # Ranked best (0.95) but its gap is past the allowance: 0.90 is chosen.
  records = [trial(0.95, 0.2), trial(0.90, 0.0), trial(0.85, 0.0)]
  assert tuning.chosen_index(records, True, TUNING) == 1
  # None within the allowance: the best of those within the limit itself
  # (excess <= 1 - fraction), then the best ranked of the rest.
  records = [trial(0.95, 0.7), trial(0.90, 0.4), trial(0.91, 0.3)]
  assert tuning.chosen_index(records, True, TUNING) == 2
  assert tuning.chosen_index(records[:1], True, TUNING) == 0
  # Lower is better; a failed trial and one without a score are never chosen.
  records = [trial(0.1, 0.0, 'FAILED'), trial(0.3, 0.0), trial(0.2, 0.0),
             {'score': None, 'status': 'COMPLETED'}]
  assert tuning.chosen_index(records, False, TUNING) == 2
  # Records without gaps (no train sample): the best score.
  assert tuning.chosen_index([{'score': 0.8}, {'score': 0.9}], True,
                             TUNING) == 1
  assert tuning.chosen_index([], True, TUNING) is None


def test_a_change_reaches_the_trainer_only_past_eval_noise():
  def trial(score, gain, se, excess=0.0, configured=False):
    return {'score': score, 'ranked': score, 'excess': excess,
            'improvement': gain, 'improvement_se': se,
            'configured': configured}
  first = trial(0.90, 0.0, 0.0, configured=True)
  # Better by 0.01 with a standard error of 0.02: the configuration stays.
  assert tuning.chosen_index([first, trial(0.91, 0.01, 0.02)], True,
                             TUNING) == 0
  # Two others at 0.05: past 1.96 standard errors the change is handed on,
  # and the best ranked of those that pass (not of all) is chosen.
  records = [first, trial(0.93, 0.03, 0.04), trial(0.92, 0.02, 0.005)]
  assert tuning.chosen_index(records, True, TUNING) == 2
  loose = config_lib.TuningConfig(change_error_rate=0.9)  # z = 0.13
  assert tuning.chosen_index(records, True, loose) == 1
  strict = config_lib.TuningConfig(change_error_rate=1e-5)  # z = 4.42
  assert tuning.chosen_index(records, True, strict) == 0
  # Two standard errors pass against one other trial, not against 19.
  passing = trial(0.95, 0.02, 0.01)
  assert tuning.chosen_index([first, passing], True, TUNING) == 1
  worse = [trial(0.80, -0.1, 0.01) for _ in range(18)]
  assert tuning.chosen_index([first, passing, *worse], True, TUNING) == 0
  # An undefined error keeps the configuration.
  assert tuning.chosen_index([first, trial(0.95, 0.05, float('nan'))], True,
                             TUNING) == 0
  # The configured trial's gap is past the allowance: a trial within it is
  # handed on whatever its eval score, as before.
  records = [trial(0.90, 0.0, 0.0, excess=0.3, configured=True),
             trial(0.89, -0.01, 0.01)]
  assert tuning.chosen_index(records, True, TUNING) == 1
  # Lower is better: the improvement is already in the metric's direction.
  records = [trial(0.30, 0.0, 0.0, configured=True), trial(0.29, 0.01, 0.02)]
  assert tuning.chosen_index(records, False, TUNING) == 0


@pytest.mark.parametrize('excess, tier', [
    (0.0, 0), (0.2, 1), (0.5, 1), (0.5001, 2), (3.0, 2)])
def test_gap_tiers_at_the_default_gap_fraction(excess, tier):
  # The excess is gap / limit - gap_fraction (gap_excess): at 0.5, an
  # excess of 0.5 is a gap at its limit.
  assert tuning.gap_tier(excess, 0.5) == tier


def test_a_trial_leaves_its_tier_only_beyond_eval_noise():
  def trial(score, gain, se, excess, configured=False, **more):
    return {'score': score, 'ranked': score, 'excess': excess,
            'improvement': gain, 'improvement_se': se,
            'configured': configured, **more}
  rival = trial(0.91, 0.01, 0.02, 0.0)
  # Past the allowance by its point estimate, within it allowing for noise
  # (one eval row of a small split): the rival must beat it beyond noise.
  first = trial(0.90, 0.0, 0.0, 0.1, configured=True, excess_beyond_noise=0.0)
  assert tuning.chosen_index([first, rival], True, TUNING) == 0
  assert tuning.chosen_index(
      [first, trial(0.99, 0.09, 0.02, 0.0)], True, TUNING) == 1
  # Past it beyond noise: a trial within the allowance competes freely.
  first = trial(0.90, 0.0, 0.0, 0.3, configured=True, excess_beyond_noise=0.1)
  assert tuning.chosen_index([first, rival], True, TUNING) == 1
  # Alike for every trial: a rival past the allowance within noise only
  # shares the configuration's tier, so it wins by beating it beyond noise
  # (0.09 at 0.02: yes), not by its tier; past it beyond noise, it is below.
  rival = trial(0.99, 0.09, 0.02, 0.3, excess_beyond_noise=0.0)
  first = trial(0.90, 0.0, 0.0, 0.0, configured=True, excess_beyond_noise=0.0)
  assert tuning.chosen_index([first, rival], True, TUNING) == 1
  rival['excess_beyond_noise'] = 0.1
  assert tuning.chosen_index([first, rival], True, TUNING) == 0


def test_a_gap_allows_for_its_eval_noise_in_its_own_units():
  binary, regression = tasks.get('binary'), tasks.get('regression')
  limits = {'accuracy': 0.03, 'log_loss': 0.05}
  gaps = {'accuracy': 0.02, 'log_loss': 0.01}  # accuracy: 0.005 past 0.5
  assert tuning.gap_excess(gaps, limits, 0.5) == pytest.approx(0.5 / 3)
  errors = tuning.gap_errors(binary.metrics, {'accuracy': 0.9,
                                              'log_loss': 0.2},
                             {'accuracy': 0.004, 'log_loss': 0.01, 'x': 1.0})
  assert errors == {'accuracy': 0.004, 'log_loss': 0.01}
  # 0.02 - 1.64 * 0.004 = 0.0134, within 0.015.
  assert tuning.excess_beyond_noise(gaps, errors, limits, 0.5, 1.64) == 0.0
  assert tuning.excess_beyond_noise(gaps, errors, limits, 0.5, 0.5) > 0.0
  # An error that cannot be told allows nothing.
  assert tuning.excess_beyond_noise(
      gaps, {'accuracy': float('nan')}, limits, 0.5, 1.64) == pytest.approx(
          0.5 / 3)
  # RMSE's gap is relative, so is its error: 0.5 on a train RMSE of 10.
  assert tuning.gap_errors(regression.metrics, {'rmse': 10.0, 'mae': 0.0},
                           {'rmse': 0.5, 'mae': 0.2}) == pytest.approx(
                               {'rmse': 0.05, 'mae': float('nan')},
                               nan_ok=True)


def test_improvement_is_paired_on_the_same_eval_rows():
  binary = tasks.get('binary')
  info = {'positive_rate': 0.5}
  rng = np.random.RandomState(0)
  labels = rng.randint(0, 2, 2000)
  signal = labels + rng.normal(0.0, 1.0, labels.size)
  first = 1.0 / (1.0 + np.exp(-signal))
  # Another model, nearly the same predictions with a little more noise.
  second = 1.0 / (1.0 + np.exp(-(signal + rng.normal(0.0, 0.3, labels.size))))
  point, replicates, _ = tuning.eval_scores(binary, info, labels, first,
                                            'auc')
  assert replicates.shape == (tuning.EVAL_REPLICATES,)
  assert point == pytest.approx(binary.accumulator(info).add_batch(
      labels, first).result()['auc'])
  other, other_replicates, _ = tuning.eval_scores(binary, info, labels,
                                                  second, 'auc')
  auc = binary.metrics['auc']
  gain, se = tuning.improvement(auc, other, other_replicates, point,
                                replicates)
  assert gain == pytest.approx(other - point) and gain < 0
  # Paired: the error of the difference is far below either AUC's own.
  assert 0 < se < 0.5 * np.std(replicates)
  assert tuning.improvement(auc, point, replicates, point, replicates) == (
      0.0, 0.0)
  # Log loss: lower is better, so a lower loss is a positive improvement.
  log_loss = binary.metrics['log_loss']
  assert tuning.improvement(log_loss, 0.2, np.array([0.2, 0.21]), 0.3,
                            np.array([0.3, 0.32]))[0] == pytest.approx(0.1)
  nan = np.array([0.1, float('nan')])
  assert np.isnan(tuning.improvement(auc, 0.9, nan, 0.9, nan)[1])


def test_each_trial_is_compared_with_the_configured_one_on_the_eval_rows():
  rng = np.random.RandomState(1)
  labels = rng.randint(0, 2, 400)
  validation = [(None, labels[:200]), (None, labels[200:])]
  search = object.__new__(tuning.RegularizationSearch)
  search.task, search.label_info = tasks.get('binary'), {'positive_rate': 0.5}
  search._eval_labels = search._reference = None  # pylint: disable=protected-access

  def model(noise):
    predictions = np.clip(labels * 0.6 + 0.2 + rng.normal(0, noise, 400), 0, 1)
    return types.SimpleNamespace(predict=lambda data, verbose: predictions)
  compare = search._against_first  # pylint: disable=protected-access
  # A trial before the configured one's (it failed): its score only.
  assert set(compare(model(0.3), validation, 'auc', False)) == {'eval',
                                                                'eval_se'}
  first = compare(model(0.3), validation, 'auc', True)
  assert (first['improvement'], first['improvement_se']) == (0.0, 0.0)
  # Every metric's standard error on the 400 eval rows, as the gate's.
  assert set(first['eval_se']) == set(search.task.metrics)
  assert 0 < first['eval_se']['accuracy'] < 0.05
  worse = compare(model(0.6), validation, 'auc', False)
  assert worse['improvement'] == pytest.approx(worse['eval'] - first['eval'])
  assert worse['improvement'] < 0 < worse['improvement_se']
  assert compare(model(0.3), validation, 'loss', False) == {}


def test_the_threshold_bounds_the_chance_of_handing_on_noise():
  assert tuning.improvement_threshold(0.05, 1) == pytest.approx(1.645, 1e-3)
  assert tuning.improvement_threshold(0.05, 19) == pytest.approx(2.790, 1e-3)
  assert tuning.improvement_threshold(0.05, 0) == tuning.improvement_threshold(
      0.05, 1)
  assert tuning.improvement_threshold(0.6, 1) == 0.0
  # Measured: 19 trials no better than the first, alike in part (their
  # differences correlated 0.5); at 0.05 the best is handed on in at most
  # 5% of searches, at one standard error in most.
  rng = np.random.RandomState(0)
  shared = rng.normal(size=(20000, 1))
  z = np.sqrt(0.5) * shared + np.sqrt(0.5) * rng.normal(size=(20000, 19))
  threshold = tuning.improvement_threshold(0.05, 19)
  assert np.mean(z.max(axis=1) > threshold) <= 0.05
  assert np.mean(z.max(axis=1) > 1.0) > 0.5


@pytest.mark.parametrize('value', ['0', '1', '-1', 'nan'])
def test_change_error_rate_must_be_a_probability(value):
  with pytest.raises(config_lib.ConfigError,
                     match='tuning.change_error_rate'):
    config_lib.load_config(overrides=[
        'data.label=y', 'data.features={numeric: [a]}',
        f'tuning.change_error_rate={value}'])


def test_the_tuner_hands_on_the_chosen_trial_not_the_ranked_best(
    monkeypatch):
  """KerasTuner's own best (ranked first) has a gap past the allowance; the
  values TFX's Tuner writes, get_best_hyperparameters()[0], are the
  chosen_index trial's."""
  def values(width):
    hp = keras_tuner.HyperParameters()
    hp.Fixed('width', width)
    return hp
  trials = {'a': values(256), 'b': values(64)}
  monkeypatch.setattr(keras_tuner.Tuner, 'get_best_hyperparameters',
                      lambda self, num_trials=1: [trials['a'], trials['b']][
                          :num_trials])
  search = object.__new__(tuning.RegularizationSearch)
  search.tuning = TUNING
  search.records = [
      {'trial_id': 'a', 'score': 0.95, 'ranked': 0.94, 'excess': 0.3,
       'status': 'COMPLETED'},
      {'trial_id': 'b', 'score': 0.93, 'ranked': 0.93, 'excess': 0.0,
       'status': 'COMPLETED'}]
  search.oracle = types.SimpleNamespace(
      objective=types.SimpleNamespace(direction='max'),
      get_trial=lambda trial_id: types.SimpleNamespace(
          hyperparameters=trials[trial_id]))
  assert search.get_best_hyperparameters()[0].get('width') == 64
  assert [hp.get('width') for hp in search.get_best_hyperparameters(2)] == [
      64, 256]
  search.records = []  # Nothing recorded: KerasTuner's order.
  assert search.get_best_hyperparameters()[0].get('width') == 256


def test_best_values_override_regularization():
  reg = config_lib.RegularizationConfig(l2=1e-3, dropout=0.2, max_norm=3.0)
  tuned = trainer_run.regularization_with(
      reg, {'l2': 1e-5, 'dropout': 0.0, 'unrelated': 1})
  assert (tuned.l2, tuned.dropout, tuned.max_norm) == (1e-5, 0.0, 3.0)


def _tuner(transformed_data, tmp_path, **overrides):
  config = fixtures.small_config(**{'tuning.enabled': 'true', **overrides})
  fn_args = launch.build_fn_args(
      examples=transformed_data['examples'],
      transform_graph=transformed_data['transform_graph'],
      model=str(tmp_path / 'model'), model_run=str(tmp_path / 'run'),
      config=config)
  fn_args.working_dir = str(tmp_path / 'tuner')
  fn_args.transform_graph_path = transformed_data['transform_graph']
  return fn_args, tuning.tuner_fn(fn_args)


@pytest.mark.slow
def test_tuner_searches_and_trainer_uses_the_best(transformed_data, tmp_path,
                                                  monkeypatch):
  fn_args, result = _tuner(transformed_data, tmp_path, **{
      'tuning.max_trials': '2', 'tuning.epochs': '2',
      'report.compare_unregularized': 'true'})
  # The test split never reaches the Tuner.
  splits = {os.path.basename(os.path.dirname(f)) for f in
            list(fn_args.train_files) + list(fn_args.eval_files)}
  assert splits == {'Split-train', 'Split-eval'}, splits
  tuner = result.tuner
  assert isinstance(tuner.oracle, keras_tuner.oracles.BayesianOptimizationOracle)
  tuner.search(**result.fit_kwargs)
  trials = tuner.oracle.get_best_trials(num_trials=10)
  assert len(trials) == 2
  assert all(t.score is not None for t in trials)  # val_auc was measured.
  with open(tuner.trials_path) as f:
    records = json.load(f)
  assert len(records) == 2
  assert {r['trial_id'] for r in records} == {t.trial_id for t in trials}
  # The first trial is the configuration as given, the reference of every
  # trial's improvement on eval.
  config = fixtures.small_config(**{'tuning.enabled': 'true'})
  assert records[0]['hyperparameters'] == tuning.configured_values(
      config, tuning.search_space(config.tuning))
  assert [r['configured'] for r in records] == [True, False]
  assert (records[0]['improvement'], records[0]['improvement_se']) == (0, 0)
  assert records[1]['improvement'] == pytest.approx(
      records[1]['eval'] - records[0]['eval'])
  assert records[1]['improvement_se'] > 0
  for r in records:  # The gate's AUC and Keras' (1,000 thresholds) agree.
    assert r['eval'] == pytest.approx(r['score'], abs=0.01)
    assert 0 < r['eval_se']['auc'] < 0.05
  # Every trial's tier allows for eval noise: never worse than without.
  for r in records:
    assert 0.0 <= r['excess_beyond_noise'] <= r['excess']
  limits = fixtures.small_config().gate.max_gap
  for r in records:
    assert r['objective'] == 'val_auc' and 0.0 <= r['score'] <= 1.0
    assert r['gap'] == pytest.approx(r['train'] - r['score'])
    assert r['gaps']['auc'] == pytest.approx(r['gap'])
    assert set(limits) <= set(r['gaps'])  # Every gap the gate checks.
    assert r['excess'] == pytest.approx(tuning.gap_excess(
        r['gaps'], limits, 0.5))
    assert r['ranked'] == pytest.approx(r['score'] - r['excess'] * 0.03)
    assert 'width' in r['hyperparameters']
  # The oracle ranked the trials by what they reported: the ranked score.
  assert sorted(t.score for t in trials) == pytest.approx(
      sorted(r['ranked'] for r in records))
  # The pipeline's executor (factory.py wires it) on this search: TFX's
  # outputs plus trials.json in tuner_results, where the report reads it.
  outputs = _executor_outputs(tuner, tmp_path, monkeypatch)
  results = outputs[standard_component_specs.TUNER_RESULTS_KEY][0]
  assert sorted(os.listdir(results.uri)) == ['trials.json',
                                             'tuner_results.json']
  runs = {NodeIds.TUNER: metadata.NodeRun(
      NodeIds.TUNER, 'COMPLETE', metadata_store_pb2.Execution(),
      {'tuner_results': [metadata_store_pb2.Artifact(uri=results.uri)]})}
  assert report.read_trials(runs) == records
  page = report.regularization_path_section(
      records, 'COMPLETE', None, None, fixtures.small_config(),
      tasks.get('binary'), str(tmp_path))
  assert '<img src="trials.png"' in page
  best = tuner.get_best_hyperparameters()[0]
  chosen = records[tuning.chosen_index(records, True, TUNING)]
  assert best.values == chosen['hyperparameters']
  # As the TFX Tuner writes it and the Trainer receives it; a bool and a
  # string forced on to see them arrive.
  handed = best.get_config()
  handed['values'].pop('hidden_units', None)  # The configured trial's.
  handed['values'].update(batch_norm=True, lr_schedule='cosine', width=48,
                          depth=1, learning_rate=0.002)
  fn_args.hyperparameters = handed
  trainer_run.run_fn(fn_args)
  with open(os.path.join(fn_args.model_run_dir, trainer_run.TRAINING_JSON)) as f:
    training = json.load(f)
  assert training['model'] == {'hidden_units': [48], 'learning_rate': 0.002}
  reg = training['regularization']
  assert (reg['batch_norm'], reg['lr_schedule']) == (True, 'cosine')
  assert reg['dropout'] == pytest.approx(best.get('dropout'))
  assert reg['l2'] == (pytest.approx(best.get('l2')) if best.get('use_l2')
                       else 0.0)
  # report.compare_unregularized: the same network without regularization,
  # after the export; the record describes the regularized model still.
  plain = training['unregularized']
  assert (plain['metric'], plain['epochs']) == ('auc', 3)
  assert plain['gap'] == pytest.approx(plain['train'] - plain['eval'])
  kernels = trainer_run.read_kernels(
      os.path.join(fn_args.model_run_dir, trainer_run.KERNELS_NPZ))
  assert kernels['hidden_0'].shape[1] == 48
  assert training['weights']['kernel_count'] == sum(
      k.size for k in kernels.values())


def _executor_outputs(tuner, tmp_path, monkeypatch):
  """``tuning.Executor().Do`` on an already searched ``tuner`` (the stock
  search step returns it), into fresh output artifacts."""
  from tfx import types
  from tfx.components.tuner import executor as tuner_executor
  from tfx.dsl.components.base import base_executor
  monkeypatch.setattr(tuner_executor, 'search', lambda *args: tuner)
  outputs = {}
  for key, kind in ((standard_component_specs.BEST_HYPERPARAMETERS_KEY,
                     types.standard_artifacts.HyperParameters),
                    (standard_component_specs.TUNER_RESULTS_KEY,
                     types.standard_artifacts.TunerResults)):
    artifact = kind()
    artifact.uri = str(tmp_path / key)
    os.makedirs(artifact.uri)
    outputs[key] = [artifact]
  context = base_executor.BaseExecutor.Context(
      tmp_dir=str(tmp_path / 'tmp'), unique_id='1')
  tuning.Executor(context).Do({}, outputs, {})
  return outputs


@pytest.mark.slow
def test_budget_stops_the_search_and_trials_stop_early(transformed_data,
                                                       tmp_path):
  fn_args, result = _tuner(transformed_data, tmp_path, **{
      'tuning.max_trials': '50', 'tuning.epochs': '200',
      'tuning.budget_minutes': '0.05'})
  start = time.monotonic()
  result.tuner.search(**result.fit_kwargs)
  elapsed = time.monotonic() - start
  with open(result.tuner.trials_path) as f:
    records = json.load(f)
  assert 1 <= len(records) < 50
  assert elapsed < 3 + 30  # The 3 s budget, plus one epoch and overhead.
  # Early stopping (or the deadline) ended every trial before 200 epochs.
  assert all(r['epochs'] < 200 for r in records)


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
