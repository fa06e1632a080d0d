"""TensorFlow helpers for reading raw columns inside Transform's graph.

Raw columns arrive dense or sparse (a missing value is an absent entry of a
``[batch, 1]`` sparse tensor); these turn them into ``[batch]`` tensors with
an explicit value for the missing ones. Imported only where TensorFlow is
already loaded (Transform's ``preprocessing_fn``, a task's label transform).
"""

import tensorflow as tf


def dense(x, default) -> tf.Tensor:
  """A ``[batch]`` dense tensor; missing values (sparse input) get ``default``."""
  if isinstance(x, tf.sparse.SparseTensor):
    x = tf.sparse.to_dense(
        tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
        default_value=default)
  return tf.reshape(x, [-1])


def floats(x) -> tf.Tensor:
  """A float32 ``[batch]`` tensor with NaN where the value is missing."""
  if isinstance(x, tf.sparse.SparseTensor):
    x = tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    return dense(x, float('nan'))
  return tf.cast(dense(x, 0), tf.float32)


def as_strings(x) -> tf.Tensor:
  """A string ``[batch]`` tensor (numbers formatted); missing is ''.
  Spaces around a value are dropped, as the pre-run check reads it: in a
  file written 'a, b, c' the class is 'b', not ' b', and a served ' b'
  means 'b' too."""
  values = dense(x, '' if x.dtype == tf.string else -1)
  if values.dtype != tf.string:
    return tf.strings.as_string(values)
  return tf.strings.strip(values)


def column(x) -> tf.Tensor:
  return tf.reshape(x, [-1, 1])
