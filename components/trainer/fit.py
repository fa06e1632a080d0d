"""The fit loop: optimizer, loss, metrics and the callbacks around ``fit``.

Three things here are easy to get wrong and matter for an honest overfitting
gap:

* The train-side curve is measured with ``evaluate`` on a fixed sample of the
  train split after each epoch (dropout off, weights frozen), not taken from
  ``fit``'s running averages, which see dropout and drifting weights.
* Early stopping monitors an eval *metric* of the task (the penalty-free log
  loss, AUC, RMSE, ...; ``val_loss`` would include the regularization
  penalty) and always restores the best epoch's weights, also when training
  runs to the last epoch, which tf_keras' ``EarlyStopping`` alone does not
  do.
* Weight averaging (EMA or SWA, ``WeightAveraging``) swaps the averaged
  weights in before each epoch's validation: the eval and train curves,
  early stopping and the exported model all see the averaged weights.
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


# one_cycle: warm up over this fraction of the steps (unless lr_warmup says
# otherwise) from learning_rate / ONE_CYCLE_DIV, then cosine down to
# learning_rate / ONE_CYCLE_FINAL_DIV (fast.ai's defaults).
ONE_CYCLE_WARMUP = 0.3
ONE_CYCLE_DIV = 25.0
ONE_CYCLE_FINAL_DIV = 1e4


def learning_rate_schedule(learning_rate: float, schedule: str,
                           total_steps: Optional[int], warmup: float = 0.0):
  """The learning rate (a float for ``constant``) or its schedule over the
  planned ``total_steps`` (``epochs * steps_per_epoch``): ``cosine`` decays
  from ``learning_rate`` to 0, after a linear warmup from 0 over the first
  ``warmup`` fraction; ``one_cycle`` rises linearly from ``learning_rate /
  25`` over ``warmup`` (0.3 when 0), then decays along a cosine to
  ``learning_rate / 1e4``. Early stopping may end training before the
  schedule does; after ``total_steps`` the rate stays at its last value."""
  if schedule == 'constant':
    return learning_rate
  if not total_steps or total_steps < 1:
    raise ValueError(f'lr_schedule {schedule}: needs the planned number of '
                     f'steps, got {total_steps}')
  if schedule == 'one_cycle':
    warmup_steps = int(round((warmup or ONE_CYCLE_WARMUP) * total_steps))
    start, alpha = learning_rate / ONE_CYCLE_DIV, 1 / ONE_CYCLE_FINAL_DIV
  elif schedule == 'cosine':
    warmup_steps = int(round(warmup * total_steps))
    start, alpha = (0.0 if warmup_steps else learning_rate), 0.0
  else:
    raise ValueError(f'unknown lr_schedule {schedule!r}')
  return keras.optimizers.schedules.CosineDecay(
      start, decay_steps=max(1, total_steps - warmup_steps), alpha=alpha,
      warmup_target=learning_rate if warmup_steps else None,
      warmup_steps=warmup_steps)


def optimizer(learning_rate,
              weight_decay: float, *, ema_decay: Optional[float] = None
              ) -> keras.optimizers.Optimizer:
  """Adam, or AdamW when decoupled weight decay is asked for;
  ``learning_rate``: a float or a schedule; ``ema_decay``: keep an
  exponential moving average of the weights (updated every step, inside the
  optimizer's distributed update; ``WeightAveraging`` swaps it in)."""
  ema = dict(use_ema=True, ema_momentum=ema_decay) if ema_decay else {}
  if not weight_decay:
    return keras.optimizers.Adam(learning_rate=learning_rate, **ema)
  opt = keras.optimizers.AdamW(learning_rate=learning_rate,
                               weight_decay=weight_decay, **ema)
  # Decay shrinks kernels only: biases and normalization scales/offsets are
  # not weights whose size measures model complexity.
  opt.exclude_from_weight_decay(var_names=['bias', 'gamma', 'beta'])
  return opt


def compile_model(model: keras.Model, model_config: config_lib.ModelConfig,
                  reg: config_lib.RegularizationConfig, task: tasks.Task,
                  label_info: Mapping[str, Any], *,
                  total_steps: Optional[int] = None) -> None:
  """Compiles inside the strategy scope the model was built in, with the
  task's loss and metrics (Keras names them as the task does);
  ``total_steps``: the planned steps (``epochs * steps_per_epoch``), which a
  learning-rate schedule other than ``constant`` needs."""
  rate = learning_rate_schedule(model_config.learning_rate, reg.lr_schedule,
                                total_steps, reg.lr_warmup)
  model.compile(
      optimizer=optimizer(
          rate, reg.weight_decay,
          ema_decay=reg.ema_decay if reg.weight_averaging == 'ema' else None),
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
    # Stopped early, the weights were restored at the last epoch's end, but
    # fit then overwrites them with an EMA optimizer's current average
    # (``finalize_variable_values``): restored again here.
    if self.best_weights is not None and (
        not ran_to_end or self.best_epoch != self.last_epoch):
      self.model.set_weights(self.best_weights)


class WeightAveraging(keras.callbacks.Callback):
  """Evaluates, early-stops on and ends with the averaged weights.

  ``ema``: the optimizer's exponential moving average (``use_ema``, updated
  every step); ``swa``: the running mean of the weights at the end of each
  epoch from ``swa_start`` (1-based) on. The model trains on its raw
  weights; once an epoch's training steps are done (at the start of fit's
  validation, or at the epoch's end without validation data) the averaged
  weights replace them, so that the validation metrics, the train curve
  (``CurveRecorder``) and early stopping's best weights all belong to the
  averaged model; the raw weights come back when the next epoch begins.
  Training ends with the averaged weights (the best epoch's, with early
  stopping). Only trainable variables are averaged: batch normalization's
  moving statistics are the raw model's. Put it first among the callbacks.
  """

  def __init__(self, method: str, swa_start: int = 1):
    super().__init__()
    if method not in config_lib.WEIGHT_AVERAGING:
      raise ValueError(f'unknown weight averaging {method!r}')
    self.method = method
    self.swa_start = swa_start
    self.averaged_epochs = 0  # SWA: epochs in the mean.
    self._raw = None  # The raw weights while the averaged ones are in.
    self._mean = None
    self._epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    if self._raw is not None:
      for variable, value in zip(self.model.trainable_variables, self._raw):
        variable.assign(value)
      self._raw = None

  def on_test_begin(self, logs=None):
    self._swap_in()

  def on_epoch_end(self, epoch, logs=None):
    self._swap_in()

  def on_train_end(self, logs=None):
    self._swap_in()
    self._raw = None

  def averaged(self):
    """The averaged values of the trainable variables (None: none yet)."""
    variables = self.model.trainable_variables
    if self.method == 'swa':
      return self._mean
    opt = self.model.optimizer
    return [opt._model_variables_moving_average[  # pylint: disable=protected-access
        opt._index_dict[opt._var_key(v)]].numpy() for v in variables]  # pylint: disable=protected-access

  def _swap_in(self):
    if self._raw is not None:
      return  # Already in for this epoch.
    raw = [v.numpy() for v in self.model.trainable_variables]
    if self.method == 'swa' and self._epoch + 1 >= self.swa_start:
      self.averaged_epochs += 1
      if self._mean is None:
        self._mean = raw
      else:
        self._mean = [m + (r - m) / self.averaged_epochs
                      for m, r in zip(self._mean, raw)]
    averaged = self.averaged()
    if averaged is None:
      return  # SWA before swa_start: the raw weights are the model.
    self._raw = raw
    for variable, value in zip(self.model.trainable_variables, averaged):
      variable.assign(value)


class CurveRecorder(keras.callbacks.Callback):
  """Per-epoch train (re-evaluated) and eval metrics, to TensorBoard and JSON."""

  def __init__(self, train_sample: tf.data.Dataset, log_dir: Optional[str],
               task: tasks.Task, monitor: Optional[str] = None,
               label: str = '', level: int = logging.INFO):
    super().__init__()
    self._train_sample = train_sample
    self._metrics = task.metrics
    self._monitor = monitor or task.default_monitor
    self._label = label  # Prefixes the epoch lines of a second model.
    self._level = level  # Of the epoch lines.
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
      EPOCH_LOGGER.log(self._level, '%sepoch %d%s', self._label,
                       record['epoch'], of)
      return
    gap = record['gap'][name]
    EPOCH_LOGGER.log(
        self._level,
        '%sepoch %d%s  %s train %.4f  eval %.4f  gap %s', self._label,
        record['epoch'], of,
        name, record['train'][name], record['eval'][name],
        f'{gap:+.1%}' if self._metrics[name].relative_gap else f'{gap:+.4f}')


def fit(model: keras.Model, train: tf.data.Dataset, evaluation: tf.data.Dataset,
        train_sample: tf.data.Dataset, *, epochs: int,
        steps_per_epoch: Optional[int],
        reg: config_lib.RegularizationConfig, task: tasks.Task,
        log_dir: Optional[str], extra_callbacks=(),
        monitor: Optional[str] = None, label: str = '',
        epoch_lines: bool = True) -> Dict:
  """Fits and returns the run's curves and early-stopping outcome.

  ``monitor``: the metric the epoch lines show (default: the early-stopping
  metric, else the task's); ``label``: a prefix for them; ``epoch_lines``
  False logs them at DEBUG, below the console's default."""
  recorder = CurveRecorder(
      train_sample, log_dir, task,
      monitor or (reg.early_stopping.metric if reg.early_stopping else None),
      label, logging.INFO if epoch_lines else logging.DEBUG)
  callbacks = [recorder, *extra_callbacks]
  averaging = None
  if reg.weight_averaging:
    # First: the averaged weights are in before the others look at them.
    averaging = WeightAveraging(reg.weight_averaging, reg.swa_start)
    callbacks.insert(0, averaging)
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
  if averaging is not None:
    result['weight_averaging'] = {'method': averaging.method}
    if averaging.method == 'swa':
      result['weight_averaging'].update(
          start_epoch=averaging.swa_start,
          averaged_epochs=averaging.averaged_epochs)
  return result


def outcome_words(result: Dict) -> str:
  """'13 epochs, best 9 (log_loss 0.6163)' of a ``fit`` result."""
  es = result.get('early_stopping')
  return (f"{result['epochs_run']} epochs"
          + (f", best {es['best_epoch']} ({es['monitor']} "
             f"{es['best_value']:.4f})" if es else ''))


def write_json(path: str, payload: Dict) -> None:
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(payload, f, indent=2, sort_keys=True)
