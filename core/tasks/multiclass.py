"""Multi-class classification: a string or integer class column, a softmax head.

The class vocabulary is learnt from the train split by Transform (most
frequent first); a class in another split that train never showed maps to
-1, which the Trainer and the gate refuse rather than fold into a class.
The trivial predictor is the train split's class frequencies.
"""

import math
from typing import Any, Dict, List

import numpy as np

from core.tasks import base

# Transform's vocabulary file of the label's classes.
LABEL_VOCABULARY = 'label_classes'


def _cross_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Keras' sparse categorical cross-entropy of probabilities ``p`` ``[n, K]``
  for classes ``y`` ``[n]``: clipped to [EPSILON, 1 - EPSILON],
  renormalized, -log of the true class's."""
  q = np.clip(p, base.EPSILON, 1.0 - base.EPSILON)
  return -np.log(q[np.arange(len(y)), y] / q.sum(axis=1))


class _Accumulator(base.Accumulator):
  """A confusion matrix (true by predicted) and the summed log loss; per
  replicate: per-class true positives, support and predictions, the log
  loss and the unseen-class rows (all that the metrics need)."""

  def __init__(self, frequencies, replicates: int = 0):
    super().__init__(replicates)
    self.prior = np.asarray(frequencies, float)
    k = len(self.prior)
    self.confusion = np.zeros((k, k), np.int64)
    self.log_loss = 0.0
    self.unknown = 0
    if replicates:
      # Per class: true positives, support, predicted.
      self.class_counts = np.zeros((replicates, 3, k))
      self.sums = np.zeros((replicates, 2))  # Log loss, unknown rows.

  def _add(self, labels, predictions, weights):
    k = len(self.prior)
    y = labels[:, 0].astype(np.int64)
    known = (y >= 0) & (y < k)
    self.unknown += int((~known).sum())
    y_known = y[known]
    p = predictions[known].astype(float)
    losses = _cross_entropy(p, y_known)
    predicted = np.argmax(p, axis=1)
    self.log_loss += float(losses.sum())
    self.confusion += np.bincount(y_known * k + predicted, minlength=k * k
                                  ).reshape(k, k)
    if weights is not None:
      w = weights[:, known]
      correct = (predicted == y_known).astype(float)
      self.class_counts[:, 0] += base.weighted_counts(y_known, k,
                                                      w * correct[None, :])
      self.class_counts[:, 1] += base.weighted_counts(y_known, k, w)
      self.class_counts[:, 2] += base.weighted_counts(predicted, k, w)
      self.sums[:, 0] += base.weighted_sums(losses[:, None], w)[:, 0]
      self.sums[:, 1] += weights[:, ~known].sum(axis=1)

  def _merge(self, other):
    self.confusion += other.confusion
    self.log_loss += other.log_loss
    self.unknown += other.unknown
    if self.replicates:
      self.class_counts += other.class_counts
      self.sums += other.sums

  def _metrics(self, tp, support, predicted, log_loss, unknown):
    """The float metrics from per-class counts ``[..., K]``, for the point
    or for every replicate at once."""
    n = support.sum(axis=-1)
    with np.errstate(divide='ignore', invalid='ignore'):
      recall = np.where(support > 0, tp / np.where(support > 0, support, 1),
                        0.0)
      precision = np.where(predicted > 0,
                           tp / np.where(predicted > 0, predicted, 1), 0.0)
      denom = precision + recall
      f1 = np.where(denom > 0, 2 * precision * recall
                    / np.where(denom > 0, denom, 1), 0.0)
    present = support > 0  # Macro averages over the classes that occur.
    classes = present.sum(axis=-1)
    frequencies = support / np.where(n > 0, n, 1)[..., None]
    # The train prior, predicted for every row, with the same clipping.
    prior = np.clip(self.prior, base.EPSILON, 1.0 - base.EPSILON)
    prior = prior / prior.sum()
    return n, recall, frequencies, {
        'accuracy': base.ratio(tp.sum(axis=-1), n),
        'macro_f1': base.ratio((f1 * present).sum(axis=-1), classes),
        'balanced_accuracy': base.ratio((recall * present).sum(axis=-1),
                                        classes),
        'log_loss': base.ratio(log_loss, n),
        'example_count': n,
        'unknown_class_count': unknown,
        # The train split's majority class, scored on these rows.
        'majority_accuracy': np.where(
            n > 0, frequencies[..., int(np.argmax(self.prior))], math.nan),
        'prior_log_loss': np.where(
            n > 0, -(frequencies * np.log(prior)).sum(axis=-1), math.nan),
    }

  def _result(self) -> Dict[str, Any]:
    cm = self.confusion
    _, recall, frequencies, values = self._metrics(
        np.diag(cm).astype(float), cm.sum(axis=1).astype(float),
        cm.sum(axis=0).astype(float), self.log_loss, float(self.unknown))
    return {
        **{name: float(v) for name, v in values.items()},
        'class_recall': recall.tolist(),
        'class_frequency': frequencies.tolist(),
        'confusion_matrix': cm.tolist(),
    }

  def _replicate_result(self) -> Dict[str, np.ndarray]:
    tp, support, predicted = (self.class_counts[:, i] for i in range(3))
    return self._metrics(tp, support, predicted, self.sums[:, 0],
                         self.sums[:, 1])[3]


class MulticlassTask(base.Task):
  """See the module docstring."""

  name = 'multiclass'
  metrics = {m.name: m for m in (
      base.Metric('accuracy', True), base.Metric('macro_f1', True),
      base.Metric('log_loss', False))}
  default_monitor = 'log_loss'
  default_max_gap = {'accuracy': 0.03, 'macro_f1': 0.05, 'log_loss': 0.05}
  default_baseline_metric = 'log_loss'
  prediction_key = 'probabilities'
  diagnostics = ('confusion_matrix',)
  trivial_scores = (('majority class', 'majority_accuracy', 'accuracy', '.4f'),
                    ('prior log loss', 'prior_log_loss', 'log_loss', '.4f'))
  _extra_gate_metrics = ('balanced_accuracy', 'unknown_class_count',
                         'majority_accuracy', 'prior_log_loss')
  gate_arrays = ('class_recall', 'class_frequency', 'confusion_matrix')

  def validate_label(self, label) -> None:
    super().validate_label(label)
    for key in ('column', 'threshold', 'relative_to', 'positive_value'):
      if getattr(label, key) is not None:
        raise base.LabelError(
            f'label.{key} does not apply to multiclass: the column named by '
            'label.name holds the classes')

  def parse_label(self, row, label) -> str:
    raw = row[label.name].strip()
    if not raw:
      raise base.LabelError(f'column {label.name!r} is empty, expected a class')
    return raw

  def label_rules(self, label) -> List[base.LabelRule]:
    return [base.LabelRule(label.name, complete=True, expected='a class',
                           values_from_train=True)]

  def check_labels(self, values: List[str], label) -> None:
    classes = set(values)
    if len(classes) < 2:
      raise base.LabelError(
          f'label {label.name!r} has one class ({next(iter(classes))!r}) in '
          f'the {len(values)} rows read; a classifier needs two or more')

  def transform_label(self, inputs, label):
    import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
    from core.tasks import tensors  # pylint: disable=g-import-not-at-top
    # No OOV bucket: an unseen class is -1, never silently another class.
    return tensors.column(tft.compute_and_apply_vocabulary(
        tensors.as_strings(inputs[label.name]), num_oov_buckets=0,
        default_value=-1, vocab_filename=LABEL_VOCABULARY))

  def label_info(self, train_labels, label, tf_transform_output) -> Dict[str, Any]:
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in
               tf_transform_output.vocabulary_by_name(LABEL_VOCABULARY)]
    self.check_split(train_labels, label, 'train')
    counts = np.bincount(np.asarray(train_labels).ravel().astype(np.int64),
                         minlength=len(classes))
    return {'classes': classes,
            'frequencies': (counts / counts.sum()).tolist()}

  def check_split(self, labels, label, split: str) -> None:
    unknown = int((np.asarray(labels) < 0).sum())
    if unknown:
      raise base.LabelError(
          f'label {label.name!r}: {unknown} rows of the {split} split hold a '
          'class that the train split never showed; merge or drop rare '
          'classes')

  def head(self, x, info, **dense_kwargs):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    return keras.layers.Dense(len(info['classes']), activation='softmax',
                              name='probabilities', **dense_kwargs)(x)

  def loss(self, info, label_smoothing: float):
    from core.tasks import keras_objects  # pylint: disable=g-import-not-at-top
    return keras_objects.SparseCrossentropy(
        num_classes=len(info['classes']), label_smoothing=label_smoothing)

  def keras_metrics(self, info) -> list:
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    from core.tasks import keras_objects  # pylint: disable=g-import-not-at-top
    return [
        keras.metrics.SparseCategoricalAccuracy(name='accuracy'),
        keras_objects.SparseMacroF1(len(info['classes']), name='macro_f1'),
        keras.metrics.SparseCategoricalCrossentropy(name='log_loss'),
    ]

  supports_temperature = True

  def with_temperature(self, output, temperature):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    # Softmax is unchanged by a shift: log p is the logits up to one.
    p = tf.clip_by_value(output, base.EPSILON, 1.0)
    return tf.nn.softmax(tf.math.log(p) / temperature, axis=-1)

  def serving_outputs(self, output, info):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    names = tf.constant(info['classes'])
    return {'probabilities': output,
            'classes': tf.tile(names[tf.newaxis, :], [tf.shape(output)[0], 1])}

  def accumulator(self, info, replicates: int = 0) -> base.Accumulator:
    return _Accumulator(info['frequencies'], replicates)

  def quality_checks(self, held_out, gate,
                     replicates=None) -> List[base.QualityCheck]:
    return [
        # A count of rows, not an estimate: one such row fails, whatever a
        # resample would hold.
        base.quality_check(
            'known_classes', lambda m: m['unknown_class_count'], held_out,
            replicates, 0.0, '<=',
            'held-out rows whose class the train split never showed',
            exact=True),
    ] + base.prior_skill_checks(held_out, gate, replicates)

  def check_serving(self, outputs, count, info) -> None:
    k = len(info['classes'])
    values = self._rows(outputs, 'probabilities', count, width=k)
    if not np.all(np.isfinite(values)) or values.min() < 0:
      raise base.LabelError('class probabilities are not finite and >= 0')
    sums = values.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-4):
      raise base.LabelError(f'class probabilities sum to {sums.min():.6f}..'
                            f'{sums.max():.6f}, not 1')
    names = self._rows(outputs, 'classes', count, width=k)
    decoded = [v.decode() if isinstance(v, bytes) else str(v) for v in names[0]]
    if decoded != list(info['classes']):
      raise base.LabelError(f'class names {decoded} are not the trained '
                            f"classes {info['classes']}")


TASK = MulticlassTask()
