"""Regression: a numeric target, a linear head, the train mean as baseline.

The network predicts the standardized target (optionally ``log1p`` of it,
``label.target_transform: log``, for a non-negative, skewed target such as a
price); a fixed output layer maps that back to the original units, so the
model, the serving signature, the metrics and the gate all speak the
label's units. The loss is the squared error in the standardized
(transformed) space, so regularization strengths mean the same whatever
the target's scale.
"""

import hashlib
import heapq
import math
import struct
from typing import Any, Dict, List, Tuple

import numpy as np

from core.tasks import base

TRANSFORMS = ('log',)
# (label, prediction) pairs the gate keeps for the report's scatter plots.
SAMPLE_PAIRS = 400


def _sample_key(y: float, p: float) -> int:
  """A pair's place in the sample: a hash of its values, so that the sample
  is the same however the rows were split between accumulators."""
  digest = hashlib.blake2b(struct.pack('<dd', y, p), digest_size=8).digest()
  return int.from_bytes(digest, 'big')


class _Accumulator(base.Accumulator):
  """Sums of the label, its square and the errors, plus a bounded sample;
  per replicate: the same sums.

  The label sums are of ``y - train mean``: the spread is computed without
  cancellation when the target's mean is large against its spread. The
  sample is the ``SAMPLE_PAIRS`` pairs with the smallest hashes (a bottom-k
  sample: uniform over distinct pairs, and mergeable exactly).
  """

  def __init__(self, train_mean: float, replicates: int = 0):
    super().__init__(replicates)
    self.train_mean = train_mean
    # Rows, sum of d, of d^2, of e^2, of |e|: d = y - train mean, e = p - y.
    self.totals = np.zeros(5)
    self._heap: List[Tuple[int, float, float]] = []  # (-key, label, prediction)
    if replicates:
      self.sums = np.zeros((replicates, 5))

  def _add(self, labels, predictions, weights):
    y = labels[:, 0].astype(np.float64)
    p = predictions[:, 0].astype(np.float64)
    e = p - y
    d = y - self.train_mean
    values = np.stack([np.ones_like(y), d, d * d, e * e, np.abs(e)], axis=1)
    self.totals += values.sum(axis=0)
    for label, prediction in zip(y.tolist(), p.tolist()):
      self._keep((-_sample_key(label, prediction), label, prediction))
    if weights is not None:
      self.sums += base.weighted_sums(values, weights)

  def _keep(self, item):
    if len(self._heap) < SAMPLE_PAIRS:
      heapq.heappush(self._heap, item)
    elif item[0] > self._heap[0][0]:  # A smaller key than the largest kept.
      heapq.heapreplace(self._heap, item)

  def _merge(self, other):
    self.totals += other.totals
    for item in other._heap:  # pylint: disable=protected-access
      self._keep(item)
    if self.replicates:
      self.sums += other.sums

  def _metrics(self, n, sum_d, sum_d2, sum_e2, sum_abs):
    """The float metrics from the sums, for the point or every replicate."""
    mean_d = base.ratio(sum_d, n)
    # Σ(y - ȳ)², and Σ(y - train mean)²: the train mean's squared error.
    total = np.where(n > 0, np.maximum(sum_d2 - n * mean_d * mean_d, 0.0),
                     math.nan)
    trivial = np.where(n > 0, sum_d2, math.nan)
    return {
        'rmse': np.sqrt(base.ratio(sum_e2, n)),
        'mae': base.ratio(sum_abs, n),
        'r2': 1.0 - base.ratio(sum_e2, total),
        'example_count': n,
        'label_mean': self.train_mean + mean_d,
        'label_std': np.sqrt(base.ratio(total, n)),
        # The train split's mean, predicted for every one of these rows.
        'mean_rmse': np.sqrt(base.ratio(trivial, n)),
        'mse_skill': 1.0 - base.ratio(sum_e2, trivial),
    }

  def _result(self) -> Dict[str, Any]:
    sample = sorted(self._heap, reverse=True)  # By key.
    values = self._metrics(*self.totals)
    return {
        **{name: float(v) for name, v in values.items()},
        'sample_label': [y for _, y, _ in sample],
        'sample_prediction': [p for _, _, p in sample],
    }

  def _replicate_result(self) -> Dict[str, np.ndarray]:
    return self._metrics(*self.sums.T)


class RegressionTask(base.Task):
  """See the module docstring."""

  name = 'regression'
  metrics = {m.name: m for m in (
      base.Metric('rmse', False, relative_gap=True),
      base.Metric('mae', False, relative_gap=True),
      base.Metric('r2', True))}
  default_monitor = 'rmse'
  # rmse and mae: relative, held-out / train - 1.
  # R² is not gap-checked by default: it divides by each split's own label
  # variance, which differs between splits on a heavy-tailed target even
  # when the errors do not (measured: test RMSE 44% below train, R² gap
  # +0.05). Set gate.max_gap.r2 to check it.
  default_max_gap = {'rmse': 0.10, 'mae': 0.10}
  default_baseline_metric = 'rmse'
  prediction_key = 'prediction'
  diagnostics = ('predicted_vs_actual', 'residuals')
  trivial_scores = (('train-mean RMSE', 'mean_rmse', 'rmse', '.4g'),)
  supports_label_smoothing = False
  _extra_gate_metrics = ('label_mean', 'label_std', 'mean_rmse', 'mse_skill')
  gate_arrays = ('sample_label', 'sample_prediction')

  def validate_label(self, label) -> None:
    for key in ('column', 'threshold', 'relative_to', 'positive_value'):
      if getattr(label, key) is not None:
        raise base.LabelError(
            f'label.{key} does not apply to regression: the column named by '
            'label.name holds the target')
    if label.target_transform not in (None,) + TRANSFORMS:
      raise base.LabelError(
          f'label.target_transform: unknown transform '
          f'{label.target_transform!r}; expected one of {TRANSFORMS} or null')

  def parse_label(self, row, label) -> float:
    raw = row[label.name].strip()
    value = base.number(raw) if raw else None
    if value is None or not np.isfinite(value):
      raise base.LabelError(f'column {label.name!r} holds {raw!r}, expected '
                            'a finite number (the regression target)')
    if label.target_transform == 'log' and value < 0:
      raise base.LabelError(f'column {label.name!r} holds {raw!r}: '
                            'target_transform log needs values >= 0')
    return value

  def label_rules(self, label) -> List[base.LabelRule]:
    log = label.target_transform == 'log'
    return [base.LabelRule(
        label.name, numeric=True, complete=True,
        min_value=0.0 if log else None,
        expected='a finite number' + (' >= 0 (target_transform log)'
                                      if log else ''))]

  def check_labels(self, values: List[float], label) -> None:
    if min(values) == max(values):
      raise base.LabelError(
          f'label {label.name!r} is constant ({values[0]}) in the '
          f'{len(values)} rows read; there is nothing to predict')

  def transform_label(self, inputs, label):
    from core.tasks import tensors  # pylint: disable=g-import-not-at-top
    return tensors.column(tensors.floats(inputs[label.name]))

  def label_info(self, train_labels, label, tf_transform_output=None) -> Dict[str, Any]:
    y = np.asarray(train_labels, np.float64).ravel()
    t = np.log1p(y) if label.target_transform == 'log' else y
    std = float(t.std())
    return {'mean': float(y.mean()), 'std': float(y.std()),
            'target_transform': label.target_transform,
            'transformed_mean': float(t.mean()),
            'transformed_std': std if std > 0 else 1.0}

  def head(self, x, info, **dense_kwargs):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    from core.tasks import keras_objects  # pylint: disable=g-import-not-at-top
    z = keras.layers.Dense(1, name='standardized', **dense_kwargs)(x)
    return keras_objects.TargetScale(
        info['transformed_mean'], info['transformed_std'],
        info['target_transform'], name='prediction')(z)

  def loss(self, info, label_smoothing: float):
    from core.tasks import keras_objects  # pylint: disable=g-import-not-at-top
    return keras_objects.StandardizedSquaredError(
        info['transformed_std'], info['target_transform'])

  def keras_metrics(self, info) -> list:
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    return [keras.metrics.RootMeanSquaredError(name='rmse'),
            keras.metrics.MeanAbsoluteError(name='mae'),
            keras.metrics.R2Score(name='r2')]

  def serving_outputs(self, output, info):
    return {'prediction': output}

  def accumulator(self, info, replicates: int = 0) -> base.Accumulator:
    return _Accumulator(float(info['mean']), replicates)

  def quality_checks(self, held_out, gate,
                     replicates=None) -> List[base.QualityCheck]:
    trivial = held_out['mean_rmse']
    return [
        base.quality_check(
            'r2_skill', lambda m: m['mse_skill'], held_out, replicates,
            gate.min_r2_skill, '>=',
            f"1 - MSE / MSE of the train mean (RMSE {held_out['rmse']:.4g} vs "
            f'{trivial:.4g})'),
        # The threshold moves with the rows (the train mean scored on them):
        # each replicate's RMSE is taken relative to its own trivial RMSE and
        # put back in the point's units, so the interval is of the model
        # against the train mean on the same resample.
        base.quality_check(
            'rmse', lambda m: m['rmse'] * base.ratio(trivial, m['mean_rmse']),
            held_out, replicates, (1.0 - gate.rmse_margin) * trivial, '<=',
            f'train-mean predictor scores {trivial:.4g}, margin '
            f'{gate.rmse_margin:.0%}'),
    ]

  def check_serving(self, outputs, count, info) -> None:
    values = self._rows(outputs, 'prediction', count)
    if not np.all(np.isfinite(values)):
      raise base.LabelError('predictions are not all finite')


TASK = RegressionTask()
