"""Mixup for tabular inputs (Zhang et al. 2018), in the model's train step.

Pairs of examples of a training batch and their labels are mixed:
``x = lam * x_i + (1 - lam) * x_j`` with ``lam ~ Beta(alpha, alpha)`` drawn
per example and ``j`` a random permutation of the batch. The mixing happens
on the encoded features (the ``features`` concatenation: numeric values and
one-hot or embedded categories), not on the raw inputs, where a category
index cannot be mixed.

The labels are mixed through the loss: ``lam * loss(y_i, p) + (1 - lam) *
loss(y_j, p)``, which for cross-entropy (binary, multiclass, with or without
label smoothing) *is* the loss of the soft label ``lam * y_i + (1 - lam) *
y_j``, and for a squared error differs from the loss of the mixed target
only by a constant, so its gradient is that of the mixed target. Every
task's own loss (``core/tasks``) serves unchanged, integer class labels
included.

The draws are stateless: the seed is folded with the optimizer's step and
the replica's id, so MirroredStrategy and MultiWorkerMirroredStrategy mix
each replica's batch differently, reproducibly, without Python-side
randomness. Evaluation and serving never mix: the model is an ordinary
functional model outside ``train_step``.
"""

from typing import Any, Mapping

import tensorflow as tf
import tf_keras as keras


def draw(batch: tf.Tensor, alpha: float, seed: tf.Tensor):
  """``(lam [batch, 1], partner [batch])`` for one batch: Beta(alpha,
  alpha) weights and a permutation, from the stateless ``seed`` (shape [2])."""
  seeds = tf.random.experimental.stateless_split(seed, 3)
  first = tf.random.stateless_gamma([batch, 1], seeds[0], alpha=alpha)
  second = tf.random.stateless_gamma([batch, 1], seeds[1], alpha=alpha)
  # Both gammas underflow to 0 for a tiny alpha: lam 0 takes the partner.
  lam = tf.math.divide_no_nan(first, first + second)
  partner = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))
  return lam, partner


def mix(features: tf.Tensor, lam: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
  lam = tf.cast(lam, features.dtype)
  return lam * features + (1 - lam) * tf.gather(features, partner)


def mixed_targets(y, y_pred, lam, partner, sample_weight=None):
  """``(y, y_pred, sample_weight)`` for the compiled loss whose weighted mean
  is ``mean(lam * loss(y, p) + (1 - lam) * loss(y[partner], p))``: the batch
  twice, the second time with the partners' labels."""
  lam = tf.reshape(tf.cast(lam, y_pred.dtype), [-1])
  # Doubled: the loss is averaged over twice the rows.
  weights = 2.0 * tf.concat([lam, 1.0 - lam], 0)
  if sample_weight is not None:
    sw = tf.reshape(tf.cast(sample_weight, weights.dtype), [-1])
    weights *= tf.concat([sw, tf.gather(sw, partner)], 0)
  return (tf.concat([y, tf.gather(y, partner)], 0),
          tf.concat([y_pred, y_pred], 0), weights)


def soft_labels(y, lam, partner, num_classes=None):
  """The labels ``mixed_targets`` stands for: ``lam * y + (1 - lam) *
  y[partner]`` (one-hot first for integer classes). For tests and reports;
  training never builds them."""
  if num_classes is not None:
    y = tf.one_hot(tf.reshape(tf.cast(y, tf.int32), [-1]), num_classes)
  y = tf.cast(y, tf.float32)
  lam = tf.cast(lam, tf.float32)
  return lam * y + (1 - lam) * tf.gather(y, partner)


@keras.utils.register_keras_serializable(package='generalize')
class MixupModel(keras.Model):
  """A functional model whose ``train_step`` mixes the encoded features of
  pairs of examples, and their labels; build it with :meth:`mixing`."""

  @classmethod
  def mixing(cls, inputs: Mapping[str, Any], features, outputs, *,
             alpha: float, seed: int) -> 'MixupModel':
    model = cls(inputs=inputs, outputs=outputs)
    # Two views sharing the model's layers: inputs -> features and
    # features -> outputs. Kept out of Keras' tracking (they hold no
    # variables of their own) so that the saved model is the plain one.
    model.__dict__['_mixup'] = dict(
        encoder=keras.Model(inputs, features),
        trunk=keras.Model(features, outputs),
        alpha=float(alpha), seed=int(seed))
    return model

  @property
  def mixup_alpha(self) -> float:
    return self.__dict__.get('_mixup', {}).get('alpha', 0.0)

  def mixup_draw(self, batch):
    """This step's ``(lam, partner)`` on this replica."""
    settings = self.__dict__['_mixup']
    seed = tf.constant([settings['seed'], 0], tf.int64)
    seed = tf.random.experimental.stateless_fold_in(
        seed, tf.cast(self.optimizer.iterations, tf.int64))
    context = tf.distribute.get_replica_context()
    replica = context.replica_id_in_sync_group if context is not None else 0
    seed = tf.random.experimental.stateless_fold_in(
        seed, tf.cast(replica, tf.int64))
    return draw(batch, settings['alpha'], seed)

  def train_step(self, data):
    settings = self.__dict__.get('_mixup')
    if not settings:
      return super().train_step(data)
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
      features = settings['encoder'](x, training=True)
      lam, partner = self.mixup_draw(tf.shape(features)[0])
      y_pred = settings['trunk'](mix(features, lam, partner), training=True)
      loss = self.compute_loss(
          x, *mixed_targets(y, y_pred, lam, partner, sample_weight))
    self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
    # fit's running train metrics compare the mixed rows' predictions with
    # their first example's labels; the train curve (fit.CurveRecorder) is
    # evaluated on un-mixed rows.
    return self.compute_metrics(x, y, y_pred, sample_weight)
