"""Binary classification: a 0/1 label, a sigmoid head, the prior as baseline.

The label is a 0/1 column, a column compared with ``positive_value``, or a
numeric column thresholded (``column > threshold``, optionally
``> threshold * relative_to``; a missing source value gives 0, as in the TFX
taxi examples). The trivial predictor is the train split's positive rate:
quality is skill over it, so the bounds mean the same at 50% and at 3%
positives.
"""

import math
from typing import Any, Dict, List

import numpy as np

from core.tasks import base

# Predictions are binned this finely for AUC and PR-AUC (TFMA's AUC uses
# 10,000 thresholds too).
BINS = 10_000
# Points of the precision-recall curve kept for the report.
CURVE_POINTS = 100
# The replicates' AUC and PR-AUC: bins equally spaced in logit(p) over
# +-LOGIT_RANGE (p from 3e-4 to 0.9997), where a 3%-positive model's
# predictions spread out; a [replicates, 2, REPLICATE_BINS] histogram stays
# small enough to merge cheaply. Each replicate is shifted by the fine
# minus the coarse point value, so the interval is centred on the point.
REPLICATE_BINS = 100
LOGIT_RANGE = 8.0


def _curves(counts: np.ndarray):
  """(AUC, average precision, tpr, precision) from ``counts[..., label,
  bin]`` (bins in increasing prediction order), over any leading axes."""
  negatives, positives = counts[..., 0, :], counts[..., 1, :]
  zero = np.zeros(counts.shape[:-2] + (1,))
  # Thresholds from the top bin down: cumulative true/false positives.
  tp = np.concatenate([zero, np.cumsum(positives[..., ::-1], axis=-1)], -1)
  fp = np.concatenate([zero, np.cumsum(negatives[..., ::-1], axis=-1)], -1)
  p, n = tp[..., -1:], fp[..., -1:]
  with np.errstate(divide='ignore', invalid='ignore'):
    tpr = np.where(p > 0, tp / np.where(p > 0, p, 1.0), 0.0)
    fpr = np.where(n > 0, fp / np.where(n > 0, n, 1.0), 0.0)
    predicted = tp + fp
    precision = np.where(predicted > 0,
                         tp / np.where(predicted > 0, predicted, 1.0), 1.0)
  auc = np.where((p[..., 0] > 0) & (n[..., 0] > 0),
                 np.trapz(tpr, fpr, axis=-1), math.nan)
  # Average precision: precision at each threshold, weighted by the recall
  # it adds.
  pr_auc = np.where(p[..., 0] > 0,
                    np.sum(np.diff(tpr, axis=-1) * precision[..., 1:], -1),
                    math.nan)
  return auc, pr_auc, tpr, precision


def _replicate_bins(p: np.ndarray) -> np.ndarray:
  clipped = np.clip(np.nan_to_num(p, nan=0.0), base.EPSILON,
                    1.0 - base.EPSILON)
  z = np.log(clipped) - np.log1p(-clipped)
  scaled = (z + LOGIT_RANGE) / (2 * LOGIT_RANGE) * REPLICATE_BINS
  return np.clip(scaled.astype(np.int64), 0, REPLICATE_BINS - 1)


class _Accumulator(base.Accumulator):
  """Counts by label and prediction bin, plus the log loss and accuracy;
  per replicate: the counts, log loss, accuracy and label sums."""

  def __init__(self, positive_rate: float, replicates: int = 0):
    super().__init__(replicates)
    self.positive_rate = positive_rate
    self.counts = np.zeros((2, BINS + 1), np.int64)
    self.log_loss = 0.0
    self.correct = 0
    if replicates:
      self.coarse = np.zeros((2, REPLICATE_BINS), np.int64)
      # Columns: rows, positives, log loss, correct.
      self.sums = np.zeros((replicates, 4))
      self.histograms = np.zeros((replicates, 2, REPLICATE_BINS))

  def _add(self, labels, predictions, weights):
    y = labels[:, 0].astype(np.int64)
    bad = (y != 0) & (y != 1)
    if bad.any():
      raise base.LabelError(f'binary label {int(y[bad][0])}, expected 0 or 1')
    p = predictions[:, 0].astype(np.float64)
    # A NaN prediction (a diverged model) counts in the lowest bin; its NaN
    # log loss then fails the gate's log-loss check instead of crashing it.
    bins = np.where(np.isnan(p), 0,
                    (np.clip(np.nan_to_num(p), 0.0, 1.0) * BINS).astype(
                        np.int64))
    self.counts += np.bincount(y * (BINS + 1) + bins,
                               minlength=2 * (BINS + 1)).reshape(2, BINS + 1)
    clipped = np.clip(p, base.EPSILON, 1.0 - base.EPSILON)
    # Keras' BinaryCrossentropy formula, epsilon inside the logs included.
    losses = -np.where(y == 1, np.log(clipped + base.EPSILON),
                       np.log(1.0 - clipped + base.EPSILON))
    self.log_loss += float(losses.sum())
    correct = (p > 0.5) == (y == 1)
    self.correct += int(correct.sum())
    if weights is not None:
      coarse = y * REPLICATE_BINS + _replicate_bins(p)
      self.coarse += np.bincount(coarse, minlength=2 * REPLICATE_BINS
                                 ).reshape(2, REPLICATE_BINS)
      self.sums += base.weighted_sums(np.stack(
          [np.ones_like(p), y.astype(float), losses, correct.astype(float)],
          axis=1), weights)
      self.histograms += base.weighted_counts(
          coarse, 2 * REPLICATE_BINS, weights).reshape(self.histograms.shape)

  def _merge(self, other):
    self.counts += other.counts
    self.log_loss += other.log_loss
    self.correct += other.correct
    if self.replicates:
      self.coarse += other.coarse
      self.sums += other.sums
      self.histograms += other.histograms

  def _label_metrics(self, n, positives):
    """The label's and the train prior's figures, for floats or arrays."""
    mean_label = base.ratio(positives, n)
    p = min(max(self.positive_rate, base.EPSILON), 1.0 - base.EPSILON)
    prior_log_loss = -(mean_label * np.log(p + base.EPSILON)
                       + (1 - mean_label) * np.log(1 - p + base.EPSILON))
    return {
        'mean_label': mean_label,
        'majority_accuracy': (mean_label if self.positive_rate >= 0.5
                              else 1.0 - mean_label),
        'prior_log_loss': prior_log_loss,
    }

  def _result(self) -> Dict[str, Any]:
    negatives, positives = self.counts.sum(axis=1)
    n = int(negatives + positives)
    auc, pr_auc, tpr, precision = _curves(self.counts)
    keep = np.unique(np.linspace(0, BINS + 1, CURVE_POINTS).astype(int))
    labels = self._label_metrics(n, positives)
    return {
        'accuracy': base.safe_div(self.correct, n),
        'auc': float(auc),
        'pr_auc': float(pr_auc),
        'log_loss': base.safe_div(self.log_loss, n),
        'example_count': float(n),
        'mean_label': float(labels['mean_label']),
        'majority_accuracy': float(labels['majority_accuracy']),
        'prior_log_loss': float(labels['prior_log_loss']),
        'pr_curve_precision': precision[keep].tolist(),
        'pr_curve_recall': tpr[keep].tolist(),
    }

  def _replicate_result(self) -> Dict[str, np.ndarray]:
    n, positives, losses, correct = self.sums.T
    fine_auc, fine_pr_auc, _, _ = _curves(self.counts)
    coarse_auc, coarse_pr_auc, _, _ = _curves(self.coarse)
    auc, pr_auc, _, _ = _curves(self.histograms)
    return {
        'accuracy': base.ratio(correct, n),
        'auc': auc + (fine_auc - coarse_auc),
        'pr_auc': pr_auc + (fine_pr_auc - coarse_pr_auc),
        'log_loss': base.ratio(losses, n),
        'example_count': n,
        **self._label_metrics(n, positives),
    }


class BinaryTask(base.Task):
  """See the module docstring."""

  name = 'binary'
  metrics = {m.name: m for m in (
      base.Metric('accuracy', True), base.Metric('auc', True),
      base.Metric('pr_auc', True), base.Metric('log_loss', False))}
  default_monitor = 'auc'
  default_max_gap = {'accuracy': 0.03, 'auc': 0.03, 'log_loss': 0.05}
  default_baseline_metric = 'auc'
  prediction_key = 'probability'
  diagnostics = ('precision_recall',)
  trivial_scores = (('majority class', 'majority_accuracy', 'accuracy', '.4f'),
                    ('prior log loss', 'prior_log_loss', 'log_loss', '.4f'))
  _extra_gate_metrics = ('mean_label', 'majority_accuracy', 'prior_log_loss')
  gate_arrays = ('pr_curve_precision', 'pr_curve_recall')

  def validate_label(self, label) -> None:
    super().validate_label(label)
    if label.column is None:
      if label.threshold is not None or label.relative_to is not None:
        raise base.LabelError('threshold and relative_to need label.column, '
                              'the numeric column to threshold')
    else:
      if label.threshold is None:
        raise base.LabelError(f'label.column {label.column!r} is thresholded: '
                              'set label.threshold')
      if label.positive_value is not None:
        raise base.LabelError('positive_value reads the label column itself; '
                              'leave label.column unset to use it')

  def parse_label(self, row, label) -> int:
    if label.column is None:
      raw = row[label.name].strip()
      if label.positive_value is not None:
        if not raw:  # Not "not positive": no label at all.
          raise base.LabelError(f'column {label.name!r} is empty; every row '
                                'needs a label')
        return int(raw == label.positive_value)
      value = {'0': 0, '1': 1, '0.0': 0, '1.0': 1}.get(raw)
      if value is None:
        raise base.LabelError(f'column {label.name!r} holds {raw!r}, '
                              'expected 0 or 1')
      return value
    source = row[label.column].strip()
    if not source:
      return 0  # A missing source value gives 0 (documented).
    value = base.number(source)
    if value is None:
      raise base.LabelError(f'column {label.column!r} holds {source!r}, '
                            'expected a number')
    bound = label.threshold
    if label.relative_to:
      reference = row[label.relative_to].strip()
      if not reference:
        return 0
      ref = base.number(reference)
      if ref is None:
        raise base.LabelError(f'column {label.relative_to!r} holds '
                              f'{reference!r}, expected a number')
      bound *= ref
    return 0 if math.isnan(value) else int(value > bound)

  def label_rules(self, label) -> List[base.LabelRule]:
    if label.column is None:
      if label.positive_value is not None:
        return [base.LabelRule(label.name, complete=True,
                               expected=f'a value (compared with '
                               f'{label.positive_value!r})')]
      return [base.LabelRule(label.name, numeric=True, complete=True,
                             min_value=0, max_value=1, expected='0 or 1')]
    # A missing source value gives 0 (documented), so only types are checked.
    return [base.LabelRule(c, numeric=True, expected='a number')
            for c in label.source_columns]

  def check_labels(self, values: List[int], label) -> None:
    rate = sum(values) / len(values)
    if rate in (0.0, 1.0):
      raise base.LabelError(
          f'label {label.name!r} is constant ({int(rate)}) in the {len(values)} '
          'rows read; a classifier needs both classes')

  def transform_label(self, inputs, label):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from core.tasks import tensors  # pylint: disable=g-import-not-at-top
    if label.column is None:
      raw = inputs[label.name]
      if label.positive_value is not None:
        values = tensors.as_strings(raw)
        return tensors.column(tf.cast(
            tf.equal(values, label.positive_value), tf.int64))
      return tensors.column(tf.cast(tensors.dense(raw, 0), tf.int64))
    source = tensors.floats(inputs[label.column])
    bound = tf.constant(label.threshold, tf.float32)
    if label.relative_to:
      bound = bound * tensors.floats(inputs[label.relative_to])
    # NaN compares false, so a missing source or reference value yields 0.
    return tensors.column(tf.cast(tf.greater(source, bound), tf.int64))

  def label_info(self, train_labels, label, tf_transform_output=None) -> Dict[str, Any]:
    return {'positive_rate': float(np.mean(train_labels))}

  def head(self, x, info, **dense_kwargs):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    return keras.layers.Dense(1, activation='sigmoid', name='probability',
                              **dense_kwargs)(x)

  def loss(self, info, label_smoothing: float):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)

  def keras_metrics(self, info) -> list:
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    return [
        keras.metrics.BinaryAccuracy(name='accuracy'),
        keras.metrics.AUC(name='auc', num_thresholds=1000),
        keras.metrics.AUC(name='pr_auc', curve='PR', num_thresholds=1000),
        keras.metrics.BinaryCrossentropy(name='log_loss'),
    ]

  supports_temperature = True

  def with_temperature(self, output, temperature):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    p = tf.clip_by_value(output, base.EPSILON, 1.0 - base.EPSILON)
    return tf.sigmoid((tf.math.log(p) - tf.math.log1p(-p)) / temperature)

  def serving_outputs(self, output, info):
    return {'probability': output}

  def accumulator(self, info, replicates: int = 0) -> base.Accumulator:
    return _Accumulator(float(info['positive_rate']), replicates)

  def quality_checks(self, held_out, gate,
                     replicates=None) -> List[base.QualityCheck]:
    prevalence = held_out['mean_label']
    return base.prior_skill_checks(held_out, gate, replicates) + [
        base.quality_check('auc', lambda m: m['auc'], held_out, replicates,
                           gate.min_auc, '>=', 'floor min_auc (0.5 is chance)'),
        base.quality_check(
            'pr_auc_skill',
            lambda m: base.ratio(m['pr_auc'] - m['mean_label'],
                                 1.0 - m['mean_label']),
            held_out, replicates, gate.min_pr_auc_skill, '>=',
            f"(PR-AUC {held_out['pr_auc']:.4f} - positive rate "
            f'{prevalence:.4f}) / (1 - positive rate)'),
    ]

  def check_serving(self, outputs, count, info) -> None:
    values = self._rows(outputs, 'probability', count)
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
      raise base.LabelError(f'predictions are not probabilities: min '
                            f'{values.min()}, max {values.max()}')


TASK = BinaryTask()
