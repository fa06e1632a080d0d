"""The fit loop: optimizer, loss, metrics and the callbacks around ``fit``.

Two things here are easy to get wrong and matter for an honest overfitting
gap:

* The train-side curve is measured with ``evaluate`` on a fixed sample of the
  train split after each epoch (dropout off, weights frozen), not taken from
  ``fit``'s running averages, which see dropout and drifting weights.
* Early stopping monitors an eval *metric* of the task (the penalty-free log
  loss, AUC, RMSE, ...; ``val_loss`` would include the regularization
  penalty) and always restores the best epoch's weights, also when training
  runs to the last epoch, which tf_keras' ``EarlyStopping`` alone does not
  do.
"""

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf
import tf_keras as keras

from core import config as config_lib
from core import tasks

# One line per epoch on this logger: a local run prints them as progress
# (pipeline/console.py listens to the same name), a Kubeflow task logs them.
EPOCH_LOGGER = logging.getLogger('generalize.epochs')


def optimizer(learning_rate: float,
              weight_decay: float) -> keras.optimizers.Optimizer:
  """Adam, or AdamW when decoupled weight decay is asked for."""
  if not weight_decay:
    return keras.optimizers.Adam(learning_rate=learning_rate)
  opt = keras.optimizers.AdamW(learning_rate=learning_rate,
                               weight_decay=weight_decay)
  # Decay shrinks kernels only: biases and normalization scales/offsets are
  # not weights whose size measures model complexity.
  opt.exclude_from_weight_decay(var_names=['bias', 'gamma', 'beta'])
  return opt


def compile_model(model: keras.Model, model_config: config_lib.ModelConfig,
                  reg: config_lib.RegularizationConfig, task: tasks.Task,
                  label_info: Mapping[str, Any]) -> None:
  """Compiles inside the strategy scope the model was built in, with the
  task's loss and metrics (Keras names them as the task does)."""
  model.compile(
      optimizer=optimizer(model_config.learning_rate, reg.weight_decay),
      loss=task.loss(label_info, reg.label_smoothing),
      metrics=task.keras_metrics(label_info))


class RestoringEarlyStopping(keras.callbacks.EarlyStopping):
  """EarlyStopping that restores the best weights however training ends."""

  def __init__(self, es: config_lib.EarlyStoppingConfig, mode: str):
    super().__init__(monitor=es.monitor, mode=mode, patience=es.patience,
                     min_delta=es.min_delta, restore_best_weights=True)
    self.last_epoch = -1

  def on_epoch_end(self, epoch, logs=None):
    self.last_epoch = epoch
    super().on_epoch_end(epoch, logs)

  def on_train_end(self, logs=None):
    super().on_train_end(logs)
    ran_to_end = self.stopped_epoch == 0
    if (ran_to_end and self.best_weights is not None
        and self.best_epoch != self.last_epoch):
      self.model.set_weights(self.best_weights)


class CurveRecorder(keras.callbacks.Callback):
  """Per-epoch train (re-evaluated) and eval metrics, to TensorBoard and JSON."""

  def __init__(self, train_sample: tf.data.Dataset, log_dir: Optional[str],
               task: tasks.Task, monitor: Optional[str] = None):
    super().__init__()
    self._train_sample = train_sample
    self._metrics = task.metrics
    self._monitor = monitor or task.default_monitor
    self._writers = None
    if log_dir:
      self._writers = {split: tf.summary.create_file_writer(
          os.path.join(log_dir, split)) for split in ('train', 'eval')}
    self.epochs: List[Dict] = []

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    train = self.model.evaluate(self._train_sample, verbose=0,
                                return_dict=True)
    record = {
        'epoch': epoch + 1,
        'train': {k: float(train[k]) for k in self._metrics},
        'eval': {k: float(logs[f'val_{k}']) for k in self._metrics
                 if f'val_{k}' in logs},
        # Objective incl. penalty, as fit reports it: shows the penalty's share.
        'fit_loss': float(logs.get('loss', float('nan'))),
    }
    record['gap'] = {
        k: self._metrics[k].gap(record['train'][k], record['eval'][k])
        for k in record['eval']}
    self.epochs.append(record)
    self._log(record)
    # Later callbacks (early stopping) may watch the clean train numbers too.
    logs.update({f'train_{k}': v for k, v in record['train'].items()})
    if self._writers:
      for split in ('train', 'eval'):
        with self._writers[split].as_default():
          for k, v in record[split].items():
            tf.summary.scalar(k, v, step=epoch + 1)
          if split == 'eval':
            for k, v in record['gap'].items():
              tf.summary.scalar(f'gap_{k}', v, step=epoch + 1)
        self._writers[split].flush()


  def _log(self, record: Dict) -> None:
    name = self._monitor
    epochs = (self.params or {}).get('epochs')
    of = f'/{epochs}' if epochs else ''
    if name not in record['eval']:
      EPOCH_LOGGER.info('epoch %d%s', record['epoch'], of)
      return
    gap = record['gap'][name]
    EPOCH_LOGGER.info(
        'epoch %d%s  %s train %.4f  eval %.4f  gap %s', record['epoch'], of,
        name, record['train'][name], record['eval'][name],
        f'{gap:+.1%}' if self._metrics[name].relative_gap else f'{gap:+.4f}')


def fit(model: keras.Model, train: tf.data.Dataset, evaluation: tf.data.Dataset,
        train_sample: tf.data.Dataset, *, epochs: int,
        steps_per_epoch: Optional[int],
        reg: config_lib.RegularizationConfig, task: tasks.Task,
        log_dir: Optional[str], extra_callbacks=()) -> Dict:
  """Fits and returns the run's curves and early-stopping outcome."""
  recorder = CurveRecorder(
      train_sample, log_dir, task,
      reg.early_stopping.metric if reg.early_stopping else None)
  callbacks = [recorder, *extra_callbacks]
  stopper = None
  if reg.early_stopping is not None:
    stopper = RestoringEarlyStopping(
        reg.early_stopping, task.monitor_mode(reg.early_stopping.metric))
    callbacks.append(stopper)
  model.fit(train, validation_data=evaluation, epochs=epochs,
            steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=2)
  result = {'epochs': recorder.epochs, 'epochs_run': len(recorder.epochs)}
  if stopper is not None:
    result['early_stopping'] = {
        'monitor': stopper.monitor,
        'best_epoch': stopper.best_epoch + 1,
        'best_value': float(stopper.best),
        'stopped_early': stopper.stopped_epoch > 0,
        'restored': stopper.best_weights is not None,
    }
  return result


def write_json(path: str, payload: Dict) -> None:
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(payload, f, indent=2, sort_keys=True)
