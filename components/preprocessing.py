"""Transform's ``preprocessing_fn``: encodes features and derives the label.

Referenced by module path (``components.preprocessing.preprocessing_fn``) so
that Transform imports it from the installed package instead of building a
wheel at run time. The dataset-specific choices come from ``custom_config``
(the pipeline's typed configuration, as a dict); the label is the task's
(``core/tasks``).

Every output has shape ``[batch, 1]`` so that the Trainer's inputs and TFMA
see one fixed-length value per example.
"""

from typing import Any, Dict, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from core import config as config_lib
from core import tasks
from core.tasks import tensors


def transformed_name(feature: str) -> str:
  return f'{feature}_xf'


def missing_name(feature: str) -> str:
  """A 0/1 indicator output for numeric features that may be missing."""
  return f'{feature}_missing_xf'


def _numeric(x, log_scale: bool) -> Dict[str, tf.Tensor]:
  """Z-scored values; a missing value becomes 0 (the mean), plus an indicator.

  Mean and variance are both taken over the present values, in one analysis
  pass: imputing first and z-scoring the imputed column would need the mean
  before the variance (a second pass over the data, which cost about a
  quarter of Transform's time, measured) and would shrink the variance by
  the imputed rows.
  """
  values = tensors.floats(x)
  present = tf.logical_not(tf.math.is_nan(values))
  if log_scale:
    values = tf.sign(values) * tf.math.log1p(tf.abs(values))
  kept = tf.boolean_mask(values, present)
  mean, var = tft.mean(kept), tft.var(kept)
  # A constant column has zero variance: it encodes as all zeros.
  z = tf.math.divide_no_nan(values - mean, tf.sqrt(var))
  out = {'value': tensors.column(tf.where(present, z, 0.0))}
  if isinstance(x, tf.sparse.SparseTensor):
    out['missing'] = tensors.column(1.0 - tf.cast(present, tf.float32))
  return out


def _categorical(x, name: str, features: config_lib.FeaturesConfig) -> tf.Tensor:
  return tensors.column(tft.compute_and_apply_vocabulary(
      tensors.as_strings(x), top_k=features.vocab_size,
      frequency_threshold=features.min_frequency,
      num_oov_buckets=features.oov_buckets, vocab_filename=name))


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """tf.Transform callback: raw features in, model-ready features out."""
  config = config_lib.from_dict(custom_config['config'])
  data = config.data
  features = data.features
  outputs = {}
  for name in features.numeric:
    encoded = _numeric(inputs[name], name in features.log_scale)
    outputs[transformed_name(name)] = encoded['value']
    if 'missing' in encoded:
      outputs[missing_name(name)] = encoded['missing']
  for name in features.categorical:
    outputs[transformed_name(name)] = _categorical(inputs[name], name, features)
  # The label as the task reads it: what training and the gate both see.
  outputs[data.label.name] = tasks.get(config.task).transform_label(
      inputs, data.label)
  return outputs
