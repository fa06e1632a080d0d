"""The Trainer's entry point: ``run_fn(fn_args)``.

Referenced by module path (``components.trainer.run.run_fn``). It parses the
typed configuration once, applies tuned hyperparameters when the Tuner ran,
builds everything inside the distribution strategy's scope, fits (on a small
train split, ``model.ensemble_size`` networks from different seeds, averaged
into one model), and has the chief export the model plus a ``training.json``
with the curves, the regularization settings and the weight statistics for
the run report. With
``report.compare_unregularized`` it then trains the same network without any
regularization (``unregularized_comparison``) and records its gap beside
them; the exported model is the regularized one either way.
"""

import dataclasses
import io
import os
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx

from components import preprocessing
from components.trainer import calibration, export, fit, inputs
from components.trainer import model as model_lib
from components.trainer import strategy as strategy_lib
from core import config as config_lib
from core import tasks

TRAINING_JSON = 'training.json'
# The Dense kernels, for the report's weight figure without loading the model.
KERNELS_NPZ = 'kernels.npz'
# Hyperparameter names the Tuner searches that override regularization; a
# ``use_<name>`` value of False sets the technique to its off value.
TUNABLE = ('l1', 'l2', 'dropout', 'weight_decay', 'batch_norm', 'input_noise',
           'mixup', 'weight_averaging', 'lr_schedule')
_OFF = {'batch_norm': False, 'weight_averaging': None, 'lr_schedule': 'constant'}
# Member i of an ensemble is built and shuffled with seed + i * this.
MEMBER_SEED_STRIDE = 1000


def member_seed(model: config_lib.ModelConfig, index: int) -> int:
  """The seed of an ensemble's member ``index``; member 0's is the single
  network's, ``model.seed``."""
  return model.seed + MEMBER_SEED_STRIDE * index


def label_columns(label: config_lib.LabelConfig):
  """Raw columns serving requests do not carry."""
  return tuple(c for c in (label.name, label.column) if c)


def regularization_with(reg: config_lib.RegularizationConfig,
                        hyperparameters: Dict[str, Any]) -> config_lib.RegularizationConfig:
  """The configured regularization with the Tuner's best values applied,
  each cast to the type of its field (bools and strings too)."""
  values = {}
  for name in TUNABLE:
    if name not in hyperparameters and f'use_{name}' not in hyperparameters:
      continue
    off = _OFF.get(name, 0.0)
    if hyperparameters.get(f'use_{name}', True) is False:
      values[name] = off
      continue
    value = hyperparameters.get(name, getattr(reg, name))
    if name == 'batch_norm':
      value = bool(value)
    elif name in ('weight_averaging', 'lr_schedule'):
      value = None if value in (None, 'none', '') else str(value)
    else:
      value = float(value)
    values[name] = value
  return dataclasses.replace(reg, **values)


def config_with(cfg: config_lib.PipelineConfig,
                hyperparameters: Dict[str, Any]) -> config_lib.PipelineConfig:
  """``cfg`` with the Tuner's values applied: the regularization
  (``regularization_with``), and the model's ``learning_rate``,
  ``hidden_units`` (``depth`` layers of ``width`` units, or ``hidden_units``
  itself) and numeric embedding (``periodic_embedding`` on or off, its
  ``periodic_sigma``; the configured frequencies and width). The Tuner's
  trials and ``run_fn`` both build from this."""
  hp = hyperparameters or {}
  model = cfg.model
  changes = {}
  if 'periodic_embedding' in hp:
    embedding = None
    if hp['periodic_embedding']:
      embedding = (model.numeric_embedding
                   or config_lib.PeriodicEmbeddingConfig())
      if 'periodic_sigma' in hp:
        embedding = dataclasses.replace(embedding,
                                        sigma=float(hp['periodic_sigma']))
    changes['numeric_embedding'] = embedding
  if 'learning_rate' in hp:
    changes['learning_rate'] = float(hp['learning_rate'])
  if 'hidden_units' in hp:
    changes['hidden_units'] = tuple(int(u) for u in hp['hidden_units'])
  elif 'width' in hp or 'depth' in hp:
    width = int(hp.get('width', model.hidden_units[0]))
    depth = int(hp.get('depth', len(model.hidden_units)))
    changes['hidden_units'] = (width,) * depth
  return dataclasses.replace(
      cfg, model=dataclasses.replace(model, **changes),
      regularization=regularization_with(cfg.regularization, hp))


def _best_hyperparameters(fn_args) -> Dict[str, Any]:
  hp = fn_args.hyperparameters
  if not hp:
    return {}
  # The Tuner hands over a keras_tuner.HyperParameters config dict.
  return dict(hp.get('values', hp))


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  cfg = config_lib.from_dict(fn_args.custom_config['config'])
  task = tasks.get(cfg.task)
  cfg = config_with(cfg, _best_hyperparameters(fn_args))
  reg = cfg.regularization
  keras.utils.set_random_seed(cfg.model.seed)
  strategy = strategy_lib.create_strategy(cfg.distribution)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  label = cfg.data.label.name
  numeric = preprocessing.numeric_encodings(tf_transform_output,
                                            cfg.data.features)
  specs = model_lib.input_specs(tf_transform_output, cfg.data.features,
                                numeric)
  train_split, eval_split = (
      inputs.read_split(files, fn_args.data_accessor, tf_transform_output,
                        label,
                        max_in_memory_bytes=cfg.model.in_memory_max_bytes,
                        features=[spec.name for spec in specs])
      for files in (fn_args.train_files, fn_args.eval_files))
  train_labels = inputs.labels(train_split)
  label_info = task_label_info(task, cfg.data.label, train_labels, eval_split,
                               tf_transform_output)
  batch = strategy_lib.global_batch_size(
      cfg.model.batch_size_for(len(train_labels)), strategy)
  logging.info('Training with %s, %d replica(s), global batch %d, '
               'regularization %s', type(strategy).__name__,
               strategy.num_replicas_in_sync, batch, reg)

  def dataset(split, seed=cfg.model.seed, **kwargs):
    ds = inputs.make_dataset(split, batch, seed=seed, **kwargs)
    return strategy_lib.apply_sharding(ds, strategy, len(split.paths),
                                       in_memory=split.in_memory)

  steps = fn_args.train_steps or None
  steps_per_epoch = max(1, steps // cfg.model.epochs) if steps else None

  def train_dataset(seed=cfg.model.seed):
    return dataset(train_split, seed=seed, shuffle=True,
                   num_epochs=None if steps else 1)

  # A learning-rate schedule spans the planned steps: full global batches.
  total_steps = cfg.model.epochs * (
      steps_per_epoch or max(1, len(train_labels) // batch))
  eval_ds = dataset(eval_split, shuffle=False)
  train_sample = dataset(train_split, shuffle=False,
                         take_batches=max(1, cfg.model.train_eval_sample // batch))
  run_dir = strategy_lib.writable_dir(fn_args.model_run_dir, strategy)
  serving_dir = strategy_lib.writable_dir(fn_args.serving_model_dir, strategy)
  size = cfg.model.ensemble_members(len(train_labels))
  members, fits = [], []
  for index in range(size):
    seed = member_seed(cfg.model, index)
    with strategy.scope():
      member = model_lib.build_model(
          specs,
          cfg.model.hidden_units, task=task, label_info=label_info,
          **model_lib.regularization_kwargs(reg),
          numeric_embedding=cfg.model.numeric_embedding, seed=seed)
      fit.compile_model(member, cfg.model, reg, task, label_info,
                        total_steps=total_steps)
    backup = strategy_lib.backup_callback(
        os.path.join(fn_args.model_run_dir,
                     'backup' if index == 0 else f'backup_member_{index}'),
        strategy)
    fits.append(fit.fit(
        member, train_dataset(seed), eval_ds, train_sample,
        epochs=cfg.model.epochs, steps_per_epoch=steps_per_epoch,
        reg=reg, task=task,
        log_dir=os.path.join(
            run_dir, 'logs' if index == 0 else f'logs_member_{index}'),
        extra_callbacks=[backup],
        label=f'member {index + 1}/{size} ' if size > 1 else '',
        # On the console, the first member's epochs (the run's curves); the
        # others' in the run log, and their best epochs in the summary.
        epoch_lines=index == 0))
    members.append(member)
    if size > 1:
      logging.info('Ensemble member %d/%d: %s', index + 1, size,
                   fit.outcome_words(fits[-1]))
  with strategy.scope():
    model = model_lib.ensemble(members, specs)
  # The curves, early stopping and weights shown are the first member's.
  result = fits[0]
  if size > 1:
    with strategy.scope():
      model.compile(loss=task.loss(label_info, 0.0),
                    metrics=task.keras_metrics(label_info))
    scores = model.evaluate(eval_ds, verbose=0, return_dict=True)
    result['ensemble'] = ensemble_record(
        fits, cfg.model, {name: float(scores[name]) for name in task.metrics
                          if name in scores})
  result.update(
      task=task.name, label_info=label_info,
      encoding=feature_encodings(cfg.data.features, numeric, specs,
                                 cfg.model.numeric_embedding),
      model={'hidden_units': list(cfg.model.hidden_units),
             'learning_rate': cfg.model.learning_rate},
      regularization={**config_lib.to_plain(reg),
                      'active': list(reg.active)},
      weights=model_lib.weight_summary(members[0]),
      strategy={'configured': cfg.distribution.strategy,
                'name': type(strategy).__name__,
                'workers': strategy_lib.worker_count(strategy),
                'replicas': strategy.num_replicas_in_sync,
                'global_batch_size': batch})
  temperature = 1.0
  if cfg.model.calibration == 'temperature' and task.supports_temperature:
    # The whole eval split on every worker: each fits the same temperature.
    result['calibration'] = calibration.fit_temperature(
        task, label_info, *calibration.predictions(
            model, inputs.make_dataset(eval_split, batch, shuffle=False,
                                       seed=cfg.model.seed)))
    temperature = result['calibration']['temperature']
    logging.info('Calibration: %s', result['calibration'])
  export.export(model, tf_transform_output, serving_dir,
                label_columns(cfg.data.label), task=task,
                label=cfg.data.label.name, label_info=label_info,
                features={'numeric': cfg.data.features.numeric,
                          'categorical': cfg.data.features.categorical},
                temperature=temperature)
  if cfg.report.compare_unregularized:
    # After the export and the weight summary: the comparison never touches
    # the model that is served, gated or described.
    result['unregularized'] = unregularized_comparison(
        cfg, task, label_info, specs, strategy, train_dataset(), eval_ds,
        train_sample, steps_per_epoch=steps_per_epoch)
  fit.write_json(os.path.join(run_dir, TRAINING_JSON), result)
  write_kernels(os.path.join(run_dir, KERNELS_NPZ),
                model_lib.kernels(members[0]))
  strategy_lib.cleanup(run_dir, strategy)
  strategy_lib.cleanup(serving_dir, strategy)


def unregularized_comparison(cfg: config_lib.PipelineConfig, task: tasks.Task,
                             label_info: Dict[str, Any],
                             specs: Sequence[model_lib.InputSpec], strategy,
                             train_ds, eval_ds, train_sample, *,
                             steps_per_epoch: Optional[int]
                             ) -> Dict[str, Any]:
  """The same network trained without any regularization on the same
  datasets, under the same strategy: ``{metric, eval, train, gap, epochs,
  seconds}`` of its last epoch, measured by ``fit.fit``'s own curve (the
  eval split and the fixed train sample). ``metric`` is the chosen model's
  early-stopping metric, or the task's default monitor.

  Same hidden units, learning rate, inputs, seed (so the same initial
  weights) and all ``model.epochs`` epochs; every technique off, the
  categorical embeddings' own L2 and dropout too, and no early stopping,
  which is itself a regularizer; a constant learning rate (a schedule is in
  the cocktail too)."""
  reg = cfg.regularization
  metric = (reg.early_stopping.metric if reg.early_stopping is not None
            else task.default_monitor)
  none = config_lib.RegularizationConfig()
  plain = [dataclasses.replace(spec, embedding_l2=0.0, embedding_dropout=0.0)
           for spec in specs]
  start = time.monotonic()
  with strategy.scope():
    model = model_lib.build_model(
        plain, cfg.model.hidden_units, task=task, label_info=label_info,
        numeric_embedding=cfg.model.numeric_embedding, seed=cfg.model.seed)
    fit.compile_model(model, cfg.model, none, task, label_info)
  fit.EPOCH_LOGGER.info('unregularized comparison (report.compare_'
                        'unregularized): the same network, no regularization')
  curves = fit.fit(model, train_ds, eval_ds, train_sample,
                   epochs=cfg.model.epochs, steps_per_epoch=steps_per_epoch,
                   reg=none, task=task, log_dir=None, monitor=metric,
                   label='unregularized ')
  last = curves['epochs'][-1]
  return {'metric': metric, 'eval': last['eval'][metric],
          'train': last['train'][metric], 'gap': last['gap'][metric],
          'epochs': curves['epochs_run'],
          'seconds': round(time.monotonic() - start, 1)}


def ensemble_record(fits: Sequence[Dict], model: config_lib.ModelConfig,
                    evaluation: Dict[str, float]) -> Dict[str, Any]:
  """What training.json says of an ensemble: its size, the row bound that
  enabled it, the averaged model's eval metrics (before calibration) and
  each member's epochs and early-stopping outcome."""
  return {
      'size': len(fits),
      'max_rows': model.ensemble_max_rows,
      'eval': evaluation,
      'members': [{'seed': member_seed(model, i),
                   'epochs_run': f['epochs_run'],
                   **({'best_epoch': f['early_stopping']['best_epoch'],
                       'best_value': f['early_stopping']['best_value']}
                      if 'early_stopping' in f else {})}
                  for i, f in enumerate(fits)],
  }


def task_label_info(task: tasks.Task, label: config_lib.LabelConfig,
                    train_labels: np.ndarray, eval_split: inputs.Split,
                    tf_transform_output: tft.TFTransformOutput) -> Dict[str, Any]:
  """The task's label information from the train split's labels; the eval
  split's are checked too (a class train never showed, for instance)."""
  try:
    info = task.label_info(train_labels, label, tf_transform_output)
    task.check_split(inputs.labels(eval_split), label, 'eval')
  except tasks.LabelError as e:
    raise inputs.InputError(str(e)) from None
  logging.info('Task %s, label %r: %s', task.name, label.name, info)
  return info


def feature_encodings(features: config_lib.FeaturesConfig,
                      numeric: Dict[str, str], specs,
                      numeric_embedding: Optional[
                          config_lib.PeriodicEmbeddingConfig] = None
                      ) -> Dict[str, Any]:
  """How each feature reached the network, for the report: the numeric
  scaling Transform chose (preprocessing.numeric_encodings) and the model's
  periodic embedding of it, if any; the categorical one-hot or embedding."""
  categorical = model_lib.input_encodings(specs)
  return {
      'numeric_encoding': features.numeric_encoding,
      'numeric': numeric,
      'numeric_embedding': config_lib.to_plain(numeric_embedding),
      'categorical': {name: categorical.get(
          preprocessing.transformed_name(name), {})
                      for name in features.categorical},
  }


def write_kernels(path: str, kernels) -> None:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **kernels)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())


def read_kernels(path: str):
  """Layer name -> kernel, as written by ``write_kernels``; {} if absent."""
  if not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path, 'rb') as f:
    with np.load(io.BytesIO(f.read())) as data:
      return {name: data[name] for name in data.files}
