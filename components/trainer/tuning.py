"""Optional budgeted search over the regularization cocktail: ``tuner_fn``.

KerasTuner's Bayesian optimization (``search_space``) chooses which
techniques are on and their strengths, the width and depth and the learning
rate; the objective is the eval split's early-stopping metric (the task's
default when early stopping is off), each trial stops early on it, and the
whole search stops at ``tuning.budget_minutes``. The first trial is the
configuration as given (``configured_values``), so the search hands on
other values only when they rank better on eval. A trial whose
train-minus-eval gap on any of the gate's gap metrics passes
``tuning.gap_fraction`` of its ``gate.max_gap`` is ranked lower
(``ranked_score``): the gate measures the gap on test with an interval, so
a winner at the limit on eval would be refused. The Tuner writes the values
of the best trial whose gaps are within that share and which beats the
configured trial by more than eval noise (``chosen_index``, ``improvement``),
and ``run.run_fn`` applies them (``run.config_with``). Each trial's
settings, best eval objective, gaps, ranked score and improvement over the
first go to ``trials.json`` in the tuner's project directory
(``TRIALS_JSON``).
"""

import json
import math
import os
import statistics
import time
from typing import Dict, Mapping, Optional, Sequence, Tuple

import keras_tuner
import numpy as np
import tf_keras as keras
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx.components.tuner import executor as tuner_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types import standard_component_specs

from components.trainer import fit, inputs, model as model_lib
from components.trainer import run as run_lib
from core import config as config_lib
from core import tasks


def objective(cfg: config_lib.PipelineConfig) -> keras_tuner.Objective:
  """``val_<metric>`` of the early-stopping metric, in the task's direction."""
  task = tasks.get(cfg.task)
  es = cfg.regularization.early_stopping
  metric = es.metric if es is not None else task.default_monitor
  return keras_tuner.Objective(f'val_{metric}', task.monitor_mode(metric))


TRIALS_JSON = 'trials.json'
PROJECT = 'regularization'
DEFAULT_PATIENCE = 3
# Past this many limits a gap ranks the trial last anyway; a bound keeps an
# infinite relative gap (a perfect train fit) a number the optimizer can use.
MAX_EXCESS = 10.0
# Bootstrap replicates of each trial's eval objective: enough for a standard
# error (not for percentiles), cheap beside a trial's fit.
EVAL_REPLICATES = 200


def gap_excess(gaps: Mapping[str, float], limits: Mapping[str, float],
               fraction: float) -> float:
  """How far the worst gap lies beyond ``fraction`` of its limit, in units
  of the limit: 0 when every gap with a positive limit is within. A gap
  that is not a number is as far as can be, as the gate fails it."""
  worst = 0.0
  for metric, gap in gaps.items():
    limit = limits.get(metric)
    if limit and limit > 0:
      worst = max(worst, MAX_EXCESS if math.isnan(gap)
                  else gap / limit - fraction)
  return min(worst, MAX_EXCESS)


def ranked_score(metric: tasks.Metric, score: float, excess: float,
                 limit: Optional[float]) -> float:
  """The score the search ranks a trial by: its eval objective made worse by
  ``excess`` times the objective's own gap limit (relative for RMSE and MAE,
  as their gaps are). Without a limit on the objective it is the score."""
  if not excess or not limit:
    return score
  penalty = excess * limit
  if metric.relative_gap:
    factor = 1 - penalty if metric.higher_is_better else 1 + penalty
    return score * factor
  return score - penalty if metric.higher_is_better else score + penalty


def eval_scores(task: tasks.Task, info: Mapping[str, object],
                labels: Sequence, predictions: Sequence, metric: str,
                replicates: int = EVAL_REPLICATES
                ) -> Tuple[float, np.ndarray, Dict[str, float]]:
  """``metric`` of ``predictions`` on ``labels`` (the task's accumulator, as
  the gate scores), its ``replicates`` bootstrap values, and the bootstrap
  standard error of every metric of the task (NaN where a replicate is not
  a number). Row ``i`` has bootstrap key ``i``: every trial is resampled
  the same way on the same eval rows, so differences between trials are
  paired."""
  result = task.accumulator(info, replicates).add_batch(
      labels, predictions, keys=range(len(labels))).result()
  values = {name: np.asarray(v, float)
            for name, v in result[tasks.base.REPLICATES].items()}
  errors = {name: (float(np.std(v, ddof=1))
                   if v.size > 1 and np.all(np.isfinite(v)) else math.nan)
            for name, v in values.items() if name in task.metrics}
  return float(result[metric]), values[metric], errors


def gap_errors(metrics: Mapping[str, tasks.Metric],
               train: Mapping[str, float],
               eval_errors: Mapping[str, float]) -> Dict[str, float]:
  """The standard error of each train-minus-eval gap from its eval side
  (``eval_errors``; the train side is scored on rows the model was fitted
  to), in the gap's units: relative to the train value for RMSE and MAE.
  NaN when it cannot be told (a train value of 0)."""
  errors = {}
  for name, se in eval_errors.items():
    metric = metrics.get(name)
    if metric is None or name not in train:
      continue
    if metric.relative_gap:
      se = se / abs(train[name]) if train[name] else math.nan
    errors[name] = se
  return errors


def excess_beyond_noise(gaps: Mapping[str, float],
                        errors: Mapping[str, float],
                        limits: Mapping[str, float], fraction: float,
                        z: float) -> float:
  """``gap_excess`` of the gaps each made smaller by ``z`` of its standard
  error (``gap_errors``; one that cannot be told counts as none): how far
  they pass ``fraction`` of their limits even allowing for eval noise."""
  def allowance(name):
    se = errors.get(name, math.nan)
    return z * se if math.isfinite(se) else 0.0
  return gap_excess({m: g - allowance(m) for m, g in gaps.items()}, limits,
                    fraction)


def improvement(metric: tasks.Metric, point: float, replicates: np.ndarray,
                reference_point: float, reference_replicates: np.ndarray
                ) -> Tuple[float, float]:
  """How much better than the reference a trial scores on the same eval rows
  (positive is better, in ``metric``'s direction), and the bootstrap
  standard error of that paired difference: NaN when a replicate is not a
  number (the metric is undefined on some resample)."""
  sign = 1.0 if metric.higher_is_better else -1.0
  differences = sign * (np.asarray(replicates, float)
                        - np.asarray(reference_replicates, float))
  se = (float(np.std(differences, ddof=1))
        if differences.size > 1 and np.all(np.isfinite(differences))
        else math.nan)
  return sign * (point - reference_point), se


def improvement_threshold(error_rate: float, others: int) -> float:
  """How many standard errors a trial's improvement over the configured one
  must pass, when ``others`` trials compete with it: the one-sided normal
  quantile at ``error_rate / others`` (Bonferroni, which holds however
  alike the trials are), so that a search whose trials are all no better
  than the configuration hands one on with a chance of at most
  ``error_rate``. Never below 0."""
  tail = error_rate / max(1, others)
  if tail >= 0.5:
    return 0.0
  return statistics.NormalDist().inv_cdf(1.0 - tail)


def completed(records) -> list:
  """Indices of the records (``trials.json``) of completed, scored trials."""
  return [i for i, r in enumerate(records)
          if r.get('ranked', r.get('score')) is not None
          and str(r.get('status', 'COMPLETED')) == 'COMPLETED']


def change_threshold(records, tuning: config_lib.TuningConfig) -> float:
  """``improvement_threshold`` for the search of ``records``: every
  completed trial but the configured one competes with it."""
  return improvement_threshold(tuning.change_error_rate,
                               len(completed(records)) - 1)


def gap_tier(excess: Optional[float], gap_fraction: float) -> int:
  """Where a trial of this gap ``excess`` (``gap_excess``; None: not
  measured) competes: 0 with every gap within ``gap_fraction`` of its
  limit, 1 within the limits, 2 beyond one."""
  if not excess:
    return 0
  return 1 if excess <= 1.0 - gap_fraction else 2


def chosen_index(records, higher_is_better: bool,
                 tuning: config_lib.TuningConfig) -> Optional[int]:
  """Index in ``records`` (``trials.json``) of the trial whose values reach
  the Trainer: the best ranked score among the completed trials whose
  eval gaps are all within ``tuning.gap_fraction`` of their limits
  (``excess`` 0); when none is, among those within the limits themselves;
  only then among all. The ranked score alone steers the search, but a
  trial the gate would likely refuse is never handed on over one it would
  likely bless. Tiers allow for eval noise (``excess_beyond_noise`` in a
  record, else ``excess``): a trial is put in a worse tier only when its
  gaps pass the allowance beyond noise, lest one eval row of a small split
  decide which trials compete; alike for every trial, so that two trials
  whose gaps differ by less than noise share a tier.

  Nor is a change from the configuration handed on that eval cannot tell
  from noise: a trial in the configured trial's tier (``configured`` in its
  record) competes only if its ``improvement`` over it passes
  ``improvement_threshold`` standard errors (``improvement_se``) at
  ``tuning.change_error_rate`` over the other completed trials; a record
  without them, as from an older search, competes on rank alone."""
  done = completed(records)
  configured = next((i for i in done if records[i].get('configured')), None)
  threshold = improvement_threshold(tuning.change_error_rate, len(done) - 1)

  def tier(i):
    record = records[i]
    return gap_tier(record.get('excess_beyond_noise', record.get('excess')),
                    tuning.gap_fraction)

  def competes(i):
    record = records[i]
    if configured is None or i == configured or tier(i) < tier(configured):
      return True
    gain, se = record.get('improvement'), record.get('improvement_se')
    if gain is None or se is None:
      return True
    return gain > threshold * se  # False for a NaN error.
  done = [i for i in done if competes(i)]
  if not done:
    return None
  sign = -1.0 if higher_is_better else 1.0
  return min(done, key=lambda i: (
      tier(i), sign * records[i].get('ranked', records[i]['score'])))


class Deadline(keras.callbacks.Callback):
  """Stops training once ``time.monotonic()`` passes ``deadline``."""

  def __init__(self, deadline: float):
    super().__init__()
    self.deadline = deadline

  def on_train_batch_end(self, batch, logs=None):
    if time.monotonic() >= self.deadline:
      self.model.stop_training = True


class ConfiguredFirstOracle(keras_tuner.oracles.BayesianOptimizationOracle):
  """Bayesian optimization whose first trial (``first_trial_id``) has the
  values ``first``."""

  def __init__(self, *, first: Optional[Mapping[str, object]] = None,
               **kwargs):
    super().__init__(**kwargs)
    self.first = dict(first or {})
    self.first_trial_id = None

  def populate_space(self, trial_id):
    if self.first and not self.trials:
      self.first_trial_id = trial_id
      return {'status': 'RUNNING',  # keras_tuner's TrialStatus.RUNNING
              'values': dict(self.first)}
    return super().populate_space(trial_id)


def configured_values(cfg: config_lib.PipelineConfig,
                      space: keras_tuner.HyperParameters) -> Dict[str, object]:
  """``cfg`` in the names of ``space`` (``search_space``), such that
  ``run.config_with(cfg, values)`` is ``cfg`` again: every value of the space
  (the optimizer reads them all; a strength a technique does not use is the
  space's default), plus ``hidden_units`` verbatim, which ``config_with``
  prefers to ``width`` and ``depth``."""
  reg, model = cfg.regularization, cfg.model
  space_of = {hp.name: hp for hp in space.space}
  values = {name: hp.default for name, hp in space_of.items()}
  for switch in [n for n in space_of if n.startswith('use_')]:
    name = switch[len('use_'):]
    values[switch] = getattr(reg, name) > 0
    if values[switch]:
      values[name] = getattr(reg, name)
  values.update(dropout=reg.dropout, batch_norm=reg.batch_norm,
                input_noise=reg.input_noise, lr_schedule=reg.lr_schedule,
                learning_rate=model.learning_rate,
                hidden_units=list(model.hidden_units),
                periodic_embedding=model.numeric_embedding is not None)
  if model.numeric_embedding is not None:
    values['periodic_sigma'] = model.numeric_embedding.sigma
  # The nearest width and depth the space has, for the optimizer.
  width, depth = space_of['width'], space_of['depth']
  units = min(max(model.hidden_units[0], width.min_value), width.max_value)
  values['width'] = units - (units - width.min_value) % (width.step or 1)
  values['depth'] = min(max(len(model.hidden_units), depth.min_value),
                        depth.max_value)
  return values


class RegularizationSearch(keras_tuner.Tuner):
  """Bayesian optimization (``ConfiguredFirstOracle``: ``first`` is its first
  trial) whose trials are tf_keras models, fitted here.

  KerasTuner 1.4 binds itself to Keras 3 whenever that is installed (TF 2.16
  installs it) and rejects tf_keras models in its default trial loop, so each
  trial builds, fits (early stopping on the objective, best epoch restored,
  stopped at the budget) and reports its best eval objective itself, and
  records its train-minus-eval gaps on ``train_sample``, and reports the
  ``ranked_score`` of its gaps against ``max_gap`` (the gate's limits).
  With ``label_info``, each trial's eval predictions are also scored with
  bootstrap replicates (``eval_scores``) and its ``improvement`` over
  the first trial recorded, for ``chosen_index``.
  """

  def __init__(self, hypermodel, *, hyperparameters, objective,
               tuning: config_lib.TuningConfig, num_initial_points: int,
               seed: int, patience: int,
               first: Optional[Mapping[str, object]] = None,
               train_sample=None, task=None, label_info=None,
               max_gap: Optional[Mapping[str, float]] = None, **kwargs):
    oracle = ConfiguredFirstOracle(
        first=first, objective=objective, max_trials=tuning.max_trials,
        num_initial_points=num_initial_points, seed=seed,
        hyperparameters=hyperparameters)
    super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
    self.tuning = tuning
    self.budget_seconds = tuning.budget_minutes * 60.0
    self.patience = patience
    self.train_sample = train_sample
    self.task = task
    self.label_info = label_info
    self.max_gap = dict(max_gap or {})
    self.records = []
    self._eval_labels = None
    self._reference = None  # The first trial's eval point and replicates.
    self._start = None
    self._durations = []
    self._pending = {}

  def get_best_hyperparameters(self, num_trials=1):
    """The ``chosen_index`` trial's values first (TFX's Tuner writes the
    first), then KerasTuner's own order."""
    best = super().get_best_hyperparameters(num_trials)
    i = chosen_index(self.records, self.oracle.objective.direction == 'max',
                     self.tuning)
    if i is None:
      return best
    chosen = self.oracle.get_trial(self.records[i]['trial_id']).hyperparameters
    rest = [hp for hp in best if hp.values != chosen.values]
    return [chosen, *rest][:num_trials]

  @property
  def trials_path(self) -> str:
    return os.path.join(self.project_dir, TRIALS_JSON)

  def search(self, *args, **kwargs):
    self._start = time.monotonic()
    return super().search(*args, **kwargs)

  @property
  def deadline(self) -> float:
    start = self._start if self._start is not None else time.monotonic()
    return start + self.budget_seconds

  def on_trial_begin(self, trial):
    self._trial_start = time.monotonic()
    super().on_trial_begin(trial)

  def run_trial(self, trial, *args, **kwargs):
    model = self.hypermodel.build(trial.hyperparameters)
    target = self.oracle.objective
    stopping = keras.callbacks.EarlyStopping(
        monitor=target.name, mode=target.direction, patience=self.patience,
        restore_best_weights=True)
    callbacks = list(kwargs.pop('callbacks', None) or []) + [
        stopping, Deadline(self.deadline)]
    history = model.fit(*args, callbacks=callbacks, **kwargs)
    values = history.history[target.name]
    best = (max if target.direction == 'max' else min)(values)
    at = values.index(best)
    if stopping.best_weights is not None:
      model.set_weights(stopping.best_weights)  # The best epoch's weights.
    record = {'trial_id': trial.trial_id,
              'hyperparameters': dict(trial.hyperparameters.values),
              'objective': target.name, 'score': float(best),
              'epochs': len(values)}
    ranked = float(best)
    if self.train_sample is not None and self.task is not None:
      name = target.name[len('val_'):]
      train = model.evaluate(self.train_sample, verbose=0, return_dict=True)
      record['train'] = float(train[name])
      # Every gap the gate checks that training measured, at the best epoch.
      gaps = {m: float(metric.gap(train[m], history.history[f'val_{m}'][at]))
              for m, metric in self.task.metrics.items()
              if m in train and f'val_{m}' in history.history}
      record['gap'] = gaps.get(name, float(self.task.metrics[name].gap(
          record['train'], float(best))))
      record['gaps'] = gaps
      train_values = {m: float(train[m]) for m in gaps}
      excess = gap_excess(gaps, self.max_gap, self.tuning.gap_fraction)
      ranked = ranked_score(self.task.metrics[name], float(best), excess,
                            self.max_gap.get(name))
      record['excess'] = excess
    record['ranked'] = ranked
    record['configured'] = trial.trial_id == self.oracle.first_trial_id
    record.update(self._against_first(
        model, kwargs.get('validation_data'), target.name[len('val_'):],
        record['configured']))
    if 'gaps' in record and 'eval_se' in record:
      record['excess_beyond_noise'] = excess_beyond_noise(
          record['gaps'],
          gap_errors(self.task.metrics, train_values, record['eval_se']),
          self.max_gap, self.tuning.gap_fraction,
          improvement_threshold(self.tuning.change_error_rate, 1))
    self._pending[trial.trial_id] = record
    return {target.name: ranked}

  def _against_first(self, model, validation, name: str,
                     configured: bool) -> Dict[str, float]:
    """The trial's eval objective as the gate computes it, every metric's
    bootstrap standard error on the eval rows (``eval_se``) and, once the
    configured trial has been scored (``configured``: this is it), its
    ``improvement`` and ``improvement_se`` over that trial on the same
    rows; {} without a task, label info or eval data."""
    if (self.task is None or self.label_info is None or validation is None
        or name not in self.task.metrics):
      return {}
    # From the dataset predict reads (unshuffled, one order every pass), so
    # labels and predictions line up; inputs.labels streams in its own order.
    if self._eval_labels is None:
      self._eval_labels = np.concatenate(
          [np.asarray(label) for _, label in validation])
    point, replicates, errors = eval_scores(
        self.task, self.label_info, self._eval_labels,
        model.predict(validation, verbose=0), name)
    if configured:
      self._reference = point, replicates
    if self._reference is None:  # The configured trial failed.
      return {'eval': point, 'eval_se': errors}
    gain, se = improvement(self.task.metrics[name], point, replicates,
                           *self._reference)
    return {'eval': point, 'eval_se': errors, 'improvement': gain,
            'improvement_se': se}

  def on_trial_end(self, trial):
    super().on_trial_end(trial)
    self._durations.append(time.monotonic() - self._trial_start)
    record = self._pending.pop(trial.trial_id, None)
    if record is not None:
      record['seconds'] = round(self._durations[-1], 3)
      record['status'] = str(trial.status)
      self.records.append(record)
      with open(self.trials_path, 'w') as f:
        json.dump(self.records, f, indent=2, default=str)
    # No trial starts that would run past the budget.
    elapsed = time.monotonic() - (self._start or time.monotonic())
    mean = sum(self._durations) / len(self._durations)
    if elapsed + mean > self.budget_seconds:
      self.oracle.max_trials = len(self.oracle.trials)


def search_space(tuning: config_lib.TuningConfig) -> keras_tuner.HyperParameters:
  """The space, a plain function of ``tuning``; ``use_<name>`` switches a
  technique off (its strength is then ignored, see ``run.config_with``):

  - ``use_l2``, ``l2``: log-uniform in [1e-6, 1e-2] (the default 3e-3 inside)
  - ``use_weight_decay``, ``weight_decay``: log-uniform in [1e-5, 1e-2]
  - ``dropout``: [0, 0.5]; ``input_noise``: [0, 0.3]
  - ``batch_norm``: on or off
  - ``use_mixup``, ``mixup``: Beta alpha in [0.1, 0.4]
  - ``lr_schedule``: constant, cosine or one-cycle
  - ``learning_rate``: log-uniform in [1e-4, 1e-2]
  - ``width``: min_width..max_width in steps of min_width; ``depth``:
    1..max_depth; hidden_units = depth layers of width units.
  - ``periodic_embedding``: numeric features through periodic embeddings
    (``model.numeric_embedding``), their initial frequencies' spread
    ``periodic_sigma`` log-uniform in [0.01, 1]: measured, 1 helped on the
    taxi sample's 10,490 train rows and hurt on a few hundred (one seeded
    run each, docs/configuration.md), so which to use is the data's call.
  """
  hp = keras_tuner.HyperParameters()
  hp.Boolean('use_l2', default=False)
  hp.Float('l2', 1e-6, 1e-2, sampling='log', default=1e-5)
  hp.Boolean('use_weight_decay', default=False)
  hp.Float('weight_decay', 1e-5, 1e-2, sampling='log', default=1e-4)
  hp.Float('dropout', 0.0, 0.5, default=0.1)
  hp.Boolean('batch_norm', default=False)
  hp.Float('input_noise', 0.0, 0.3, default=0.0)
  hp.Boolean('use_mixup', default=False)
  hp.Float('mixup', 0.1, 0.4, default=0.2)
  hp.Choice('lr_schedule', list(config_lib.LR_SCHEDULES), default='constant')
  hp.Float('learning_rate', 1e-4, 1e-2, sampling='log', default=3e-3)
  width = min(max(64, tuning.min_width), tuning.max_width)
  hp.Int('width', tuning.min_width, tuning.max_width, step=tuning.min_width,
         default=width - width % tuning.min_width)
  hp.Int('depth', 1, tuning.max_depth, default=min(2, tuning.max_depth))
  hp.Boolean('periodic_embedding', default=False)
  hp.Float('periodic_sigma', 0.01, 1.0, sampling='log', default=0.1)
  return hp


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  cfg = config_lib.from_dict(fn_args.custom_config['config'])
  task = tasks.get(cfg.task)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  specs = model_lib.input_specs(tf_transform_output, cfg.data.features)

  def split(files):
    return inputs.read_split(
        files, fn_args.data_accessor, tf_transform_output, cfg.data.label.name,
        max_in_memory_bytes=cfg.model.in_memory_max_bytes,
        features=[spec.name for spec in specs])
  train, evaluation = split(fn_args.train_files), split(fn_args.eval_files)
  train_labels = inputs.labels(train)
  label_info = run_lib.task_label_info(task, cfg.data.label, train_labels,
                                       evaluation, tf_transform_output)
  batch_size = cfg.model.batch_size_for(len(train_labels))

  def build(hp: keras_tuner.HyperParameters):
    trial_cfg = run_lib.config_with(cfg, hp.values)
    reg = trial_cfg.regularization
    model = model_lib.build_model(
        specs, trial_cfg.model.hidden_units, task=task, label_info=label_info,
        **model_lib.regularization_kwargs(reg),
        numeric_embedding=trial_cfg.model.numeric_embedding,
        seed=cfg.model.seed)
    fit.compile_model(model, trial_cfg.model, reg, task, label_info,
                      total_steps=cfg.tuning.epochs * max(
                          1, len(train_labels) // batch_size))
    return model

  es = cfg.regularization.early_stopping
  trials = cfg.tuning.max_trials
  space = search_space(cfg.tuning)
  tuner = RegularizationSearch(
      build, hyperparameters=space, first=configured_values(cfg, space),
      objective=objective(cfg), tuning=cfg.tuning,
      num_initial_points=max(1, min(5, trials // 2)), seed=cfg.model.seed,
      patience=es.patience if es is not None else DEFAULT_PATIENCE,
      train_sample=inputs.make_dataset(
          train, batch_size, shuffle=False, seed=cfg.model.seed,
          take_batches=max(1, cfg.model.train_eval_sample // batch_size)),
      task=task, label_info=label_info, max_gap=cfg.gate.max_gap,
      directory=fn_args.working_dir, project_name=PROJECT)

  def dataset(split, shuffle):
    return inputs.make_dataset(split, batch_size, shuffle=shuffle,
                               seed=cfg.model.seed)

  return tfx.components.TunerFnResult(
      tuner=tuner,
      fit_kwargs={'x': dataset(train, True),
                  'validation_data': dataset(evaluation, False),
                  'epochs': cfg.tuning.epochs, 'verbose': 0})


def copy_trials(tuner: RegularizationSearch, output_dict) -> str:
  """Copies the search's ``trials.json`` next to TFX's ``tuner_results.json``
  in the ``tuner_results`` artifact (the working directory is the executor's
  temporary one); returns the destination ('' when there was none)."""
  src = getattr(tuner, 'trials_path', None)
  if not src or not fileio.exists(src):
    return ''
  dst = os.path.join(artifact_utils.get_single_uri(
      output_dict[standard_component_specs.TUNER_RESULTS_KEY]), TRIALS_JSON)
  fileio.copy(src, dst, overwrite=True)
  return dst


class Executor(tuner_executor.Executor):
  """The stock Tuner executor that also keeps ``trials.json`` in the
  ``tuner_results`` artifact, where the run report reads it. The pipeline's
  Tuner runs it (``pipeline/factory.py`` sets ``tuner.executor_spec``)."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    if tuner_executor.get_tune_args(exec_properties):
      raise ValueError("TuneArgs is not supported by this Tuner's Executor.")
    tuner = tuner_executor.search(input_dict, exec_properties,
                                  self._get_tmp_dir())
    tuner_executor.write_best_hyperparameters(tuner, output_dict)
    copy_trials(tuner, output_dict)
