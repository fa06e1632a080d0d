"""The Keras losses, metrics and layers the tasks need beyond tf_keras' own.

Registered as serializable (package ``tasks``) so that an exported model
loads back as a Keras model wherever this module is imported.
"""

import tensorflow as tf
import tf_keras as keras

_PACKAGE = 'tasks'


@keras.utils.register_keras_serializable(package=_PACKAGE)
class SparseCrossentropy(keras.losses.Loss):
  """Categorical cross-entropy of integer labels, with label smoothing (which
  tf_keras' sparse loss does not offer)."""

  def __init__(self, num_classes: int, label_smoothing: float = 0.0,
               name: str = 'sparse_crossentropy', **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_classes = num_classes
    self.label_smoothing = label_smoothing
    self._loss = keras.losses.CategoricalCrossentropy(
        label_smoothing=label_smoothing, reduction=keras.losses.Reduction.NONE)

  def call(self, y_true, y_pred):
    labels = tf.one_hot(tf.reshape(tf.cast(y_true, tf.int32), [-1]),
                        self.num_classes)
    return self._loss(labels, y_pred)

  def get_config(self):
    return {**super().get_config(), 'num_classes': self.num_classes,
            'label_smoothing': self.label_smoothing}


@keras.utils.register_keras_serializable(package=_PACKAGE)
class SparseMacroF1(keras.metrics.Metric):
  """Macro-averaged F1 of the arg-max class, over the classes that occur."""

  def __init__(self, num_classes: int, name: str = 'macro_f1', **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_classes = num_classes
    self.confusion = self.add_weight(
        name='confusion', shape=(num_classes, num_classes),
        initializer='zeros', dtype=tf.float32)

  def update_state(self, y_true, y_pred, sample_weight=None):
    labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
    predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    self.confusion.assign_add(tf.math.confusion_matrix(
        labels, predicted, num_classes=self.num_classes, dtype=tf.float32,
        weights=sample_weight))

  def result(self):
    cm = self.confusion
    tp = tf.linalg.diag_part(cm)
    support = tf.reduce_sum(cm, axis=1)
    precision = tf.math.divide_no_nan(tp, tf.reduce_sum(cm, axis=0))
    recall = tf.math.divide_no_nan(tp, support)
    f1 = tf.math.divide_no_nan(2 * precision * recall, precision + recall)
    present = tf.cast(support > 0, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(f1 * present),
                                 tf.reduce_sum(present))

  def reset_state(self):
    self.confusion.assign(tf.zeros_like(self.confusion))

  def get_config(self):
    return {**super().get_config(), 'num_classes': self.num_classes}


def _forward(y, transform):
  return tf.math.log1p(y) if transform == 'log' else y


@keras.utils.register_keras_serializable(package=_PACKAGE)
class TargetScale(keras.layers.Layer):
  """Standardized prediction -> original units: ``z * std + mean``, then the
  inverse of the target transform (``expm1`` for ``log``)."""

  def __init__(self, mean: float, std: float, transform=None, **kwargs):
    super().__init__(**kwargs)
    self.mean, self.std, self.transform = mean, std, transform

  def call(self, z):
    t = z * self.std + self.mean
    # expm1 overflows float32 above ~88; a target that large is no target.
    return tf.math.expm1(tf.minimum(t, 80.0)) if self.transform == 'log' else t

  def get_config(self):
    return {**super().get_config(), 'mean': self.mean, 'std': self.std,
            'transform': self.transform}


@keras.utils.register_keras_serializable(package=_PACKAGE)
class StandardizedSquaredError(keras.losses.Loss):
  """Squared error in the standardized, transformed target space:
  ``((f(y) - f(prediction)) / std)^2`` with ``f`` the target transform."""

  def __init__(self, std: float, transform=None,
               name: str = 'standardized_squared_error', **kwargs):
    super().__init__(name=name, **kwargs)
    self.std, self.transform = std, transform

  def call(self, y_true, y_pred):
    y_true = tf.cast(y_true, y_pred.dtype)
    error = (_forward(y_true, self.transform)
             - _forward(y_pred, self.transform)) / self.std
    return tf.reduce_mean(tf.square(error), axis=-1)

  def get_config(self):
    return {**super().get_config(), 'std': self.std,
            'transform': self.transform}
