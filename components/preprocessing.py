"""Transform's ``preprocessing_fn``: encodes features and derives the label.

Referenced by module path (``components.preprocessing.preprocessing_fn``) so
that Transform imports it from the installed package instead of building a
wheel at run time. The dataset-specific choices come from ``custom_config``
(the pipeline's typed configuration, as a dict); the label is the task's
(``core/tasks``).

Every output has shape ``[batch, 1]`` so that the Trainer's inputs and TFMA
see one fixed-length value per example.
"""

import hashlib
import re
from typing import Any, Dict, List, Mapping

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


def linear_name(feature: str) -> str:
  """Under ``auto``, a heavy column's z-score beside its robust encoding
  (zeros for a column encoded by its z-score alone)."""
  return f'{feature}_linear_xf'


# Robust scaling: quantiles at 5%, 10%, ..., 95% of the present values.
QUANTILE_BUCKETS = 20
QUANTILE_EPSILON = 0.005
# The smooth clip's bound (RealMLP, Holzmueller et al. 2024): a robust-scaled
# value x becomes x / sqrt(1 + (x / CLIP)^2), near x inside a few IQRs of the
# median and never beyond CLIP.
CLIP = 3.0
# ``auto`` takes the robust encoding when the standard deviation exceeds
# HEAVY_TAIL_RATIO times the one a Gaussian of the same IQR has (IQR / 1.349;
# Laplace 1.38, exponential 1.23, lognormal(0, 1) 1.98, a 1% contamination
# 20 sigma out about 2.3), or when some value lies more than EXTREME_Z
# standard deviations from the mean (a Gaussian column of a billion rows
# reaches about 6): that row would dominate a z-scored input.
HEAVY_TAIL_RATIO = 1.5
EXTREME_Z = 8.0
IQR_PER_SIGMA = 1.349
# A Gaussian's 5%-95% range in IQRs: the scale when the IQR is zero.
WIDE_PER_IQR = 3.29 / 1.349
# Numeric columns encoded together (see _numeric).
ENCODING_BLOCK = 32


def smooth_clip(x, bound: float = CLIP):
  # Bounded first so that the square cannot overflow (at 1e6 the clip is
  # bound to float precision already).
  x = tf.clip_by_value(x, -1e6, 1e6)
  return x / tf.sqrt(1.0 + tf.square(x / bound))


def _statistics(values, encoding: str) -> Dict[str, tf.Tensor]:
  """What ``encoding`` needs to know of each column of ``values`` (``[batch,
  k]``, NaN where missing), as ``[k]`` vectors: one analyzer per statistic
  over all the columns (``reduce_instance_dims=False``), each ignoring the
  NaNs. An analyzer per column made tf.Transform's time and memory grow
  faster than the column count (docs/performance.md, P5)."""
  # Summed in float64: float32 sums down a [batch, k] column lost digits
  # of a latitude (41.9 +- 0.04): z-scores off by 2.6e-3 on the taxi
  # sample, against 1.6e-4 for the 1-D sums of one column.
  # (tf.Transform's TF2 mode loses the float64 outputs' static shape.)
  k = values.shape[1]
  if k == 1:
    # tf.Transform's TF1 mode binds an analyzer's [1] output as a constant
    # of shape [], a rank its graph then refuses ("Shapes must be equal
    # rank, but are 0 and 1"): one column is analyzed as two.
    twice = _statistics(tf.concat([values, values], axis=1), encoding)
    return {name: stat[:1] for name, stat in twice.items()}
  values64 = tf.cast(values, tf.float64)
  mean = tf.reshape(tf.cast(
      tft.mean(values64, reduce_instance_dims=False), tf.float32), [k])
  std = tf.reshape(tf.cast(tf.sqrt(
      tft.var(values64, reduce_instance_dims=False)), tf.float32), [k])
  stats = {'mean': mean, 'std': std}
  if encoding == 'zscore':
    return stats
  # Robust scaling by the median and the IQR. A zero IQR (a column that is
  # mostly one value) falls back to the 5%-95% range, then to the standard
  # deviation; a constant column encodes as zeros.
  q = tft.quantiles(values, QUANTILE_BUCKETS, QUANTILE_EPSILON,
                    reduce_instance_dims=False)
  iqr = q[:, 3 * QUANTILE_BUCKETS // 4 - 1] - q[:, QUANTILE_BUCKETS // 4 - 1]
  wide = (q[:, QUANTILE_BUCKETS - 2] - q[:, 0]) / WIDE_PER_IQR
  scale = tf.where(iqr > 0, iqr, tf.where(wide > 0, wide, IQR_PER_SIGMA * std))
  stats.update(median=q[:, QUANTILE_BUCKETS // 2 - 1], scale=scale)
  if encoding == 'auto':
    # The largest and the smallest present value, from one analyzer.
    present = tf.logical_not(tf.math.is_nan(values))
    both = tft.max(tf.where(tf.concat([present, present], axis=1),
                            tf.concat([values, -values], axis=1),
                            float('-inf')), reduce_instance_dims=False)
    extreme = tf.maximum(both[:k] - mean, mean + both[k:])
    stats['heavy'] = tf.logical_or(
        std * IQR_PER_SIGMA > HEAVY_TAIL_RATIO * scale,
        extreme > EXTREME_Z * std)
  return stats


def _encode(x, stats: Dict[str, tf.Tensor],
            encoding: str) -> Dict[str, tf.Tensor]:
  """Columns ``x`` (``[batch, m]``, NaN where missing) encoded with their
  statistics (``[m]`` each); a missing value becomes 0 (the mean or the
  median)."""
  present = tf.logical_not(tf.math.is_nan(x))
  # A constant column has zero variance: it encodes as all zeros.
  z = tf.math.divide_no_nan(x - stats['mean'], stats['std'])
  out = {}
  if encoding != 'zscore':
    robust = smooth_clip(tf.math.divide_no_nan(x - stats['median'],
                                               stats['scale']))
    if encoding == 'robust':
      z = robust
    else:
      heavy = stats['heavy']
      # The clip keeps an outlier from dominating the first layer but
      # flattens the tail; where the tail is signal (an arrival delay
      # follows the departure delay linearly for hours) the network still
      # needs its distance, so a heavy column keeps its z-score as a second
      # input. The outputs are fixed when the graph is traced, before the
      # analysis decides, so a column that is not heavy gets zeros there.
      out['linear'] = tf.where(tf.logical_and(present, heavy), z, 0.0)
      z = tf.where(heavy, robust, z)
  out['value'] = tf.where(present, z, 0.0)
  return out


def _numeric(inputs: Dict[str, Any],
             features: config_lib.FeaturesConfig) -> Dict[str, tf.Tensor]:
  """Every numeric column scaled, plus a 0/1 indicator (``missing_name``)
  for a column that may miss a value.

  ``features.numeric_encoding``: ``zscore``, ``robust`` or ``auto``
  (config.NUMERIC_ENCODINGS; ``auto`` decides per column from the
  analyzers' outputs, see HEAVY_TAIL_RATIO, and gives a heavy column both
  encodings, ``linear_name``). Every statistic is taken over the present
  values, in one analysis pass: imputing first and z-scoring the imputed
  column would need the mean before the variance (a second pass, about a
  quarter of Transform's time, measured) and would shrink the variance by
  the imputed rows.
  """
  encoding = features.numeric_encoding
  names = features.numeric
  columns = []
  for name in names:
    x = tensors.floats(inputs[name])
    if name in features.log_scale:
      x = tf.sign(x) * tf.math.log1p(tf.abs(x))
    columns.append(x)
  stats = _statistics(tf.stack(columns, axis=1), encoding)
  out = {}
  # Encoded a block of columns at a time, each block stacked afresh from
  # its own inputs: the analyzers' outputs are constants in Transform's
  # graph, so an output depends on its block's inputs only. tf.Transform's
  # loader walks the graph from every output to its inputs; with all the
  # columns in one stack that walk covered the whole graph for each output
  # (193 s to load a 1,000-column graph), and one small graph per column
  # made Transform twice as slow.
  for lo in range(0, len(names), ENCODING_BLOCK):
    block = slice(lo, lo + ENCODING_BLOCK)
    x = tf.stack(columns[block], axis=1)
    encoded = _encode(x, {k: v[block] for k, v in stats.items()}, encoding)
    missing = tf.cast(tf.math.is_nan(x), tf.float32)
    for j, name in enumerate(names[block]):
      out[transformed_name(name)] = encoded['value'][:, j:j + 1]
      if 'linear' in encoded:
        out[linear_name(name)] = encoded['linear'][:, j:j + 1]
      if isinstance(inputs[name], tf.sparse.SparseTensor):
        out[missing_name(name)] = missing[:, j:j + 1]
  return out


# TensorFlow's name scopes (tf.Transform's analyzers, Keras layers) and file
# names take these; a column named 'Age (years)', 'km/h' or 'Ünïcode' does
# not fit.
_SAFE_NAME = re.compile(r'^[A-Za-z0-9.][A-Za-z0-9_.-]*$')


def safe_name(name: str) -> str:
  """``name`` (a column's, or a key derived from it) where a name scope or
  a file name is made of it: unchanged when it fits, else its other
  characters as ``_`` and a short hash of it, which keeps two columns that
  differ only in such characters apart."""
  if _SAFE_NAME.match(name):
    return name
  digest = hashlib.sha1(name.encode('utf-8')).hexdigest()[:6]
  return f"f_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}_{digest}"


def vocabulary_name(feature: str) -> str:
  """The name of a categorical feature's vocabulary in Transform's output."""
  return safe_name(feature)


def _categorical(x, name: str, features: config_lib.FeaturesConfig) -> tf.Tensor:
  return tensors.column(tft.compute_and_apply_vocabulary(
      tensors.as_strings(x), top_k=features.vocab_size,
      frequency_threshold=features.min_frequency,
      num_oov_buckets=features.oov_buckets,
      vocab_filename=vocabulary_name(name)))


def output_clashes(features: config_lib.FeaturesConfig,
                   label: str) -> List[str]:
  """Transform's output names that two columns could both produce (column
  'x_missing' and the missing indicator of 'x', a label named 'x_xf'), one
  line each: one output would silently replace the other."""
  owners: Dict[str, List[str]] = {}
  for name in features.numeric:
    for key, what in ((transformed_name(name), 'its encoding'),
                      (missing_name(name), 'its missing indicator'),
                      (linear_name(name), 'its z-score beside the robust '
                       'encoding')):
      owners.setdefault(key, []).append(f'column {name!r} ({what})')
  for name in features.categorical:
    owners.setdefault(transformed_name(name), []).append(
        f'column {name!r} (its encoding)')
  owners.setdefault(label, []).append(f'the label {label!r}')
  return [f'{key!r}: ' + ' and '.join(who)
          for key, who in owners.items() if len(who) > 1]


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """tf.Transform callback: raw features in, model-ready features out."""
  config = config_lib.from_dict(custom_config['config'])
  data = config.data
  features = data.features
  clashes = output_clashes(features, data.label.name)
  if clashes:
    raise ValueError(
        "Transform's outputs would hold one name twice, "
        + '; '.join(clashes) + ': rename one of the columns')
  outputs = {}
  if features.numeric:
    outputs.update(_numeric(inputs, features))
  for name in features.categorical:
    outputs[transformed_name(name)] = _categorical(inputs[name], name, features)
  # The label as the task reads it: what training and the gate both see.
  outputs[data.label.name] = tasks.get(config.task).transform_label(
      inputs, data.label)
  return outputs


def with_linear(encodings: Dict[str, str]) -> set:
  """The numeric columns whose ``linear_name`` output carries their z-score
  (auto's heavy columns), from ``numeric_encodings``; the others' is zeros,
  and no model input."""
  return {name for name, kind in encodings.items()
          if kind.startswith('robust + ')}


# A raw value far beyond any column's spread: the robust encoding maps it
# inside +-CLIP, a z-score (even of its log, 34.5) far outside.
_PROBE = 1e15


def numeric_encodings(tf_transform_output,
                      features: config_lib.FeaturesConfig) -> Dict[str, str]:
  """Numeric column -> the encoding Transform applied: ``zscore``,
  ``robust``, ``robust + zscore`` (auto's heavy column) or ``constant`` (all
  zeros), with `` of log`` when log-scaled.

  Read back from Transform's own graph (the analyzers' outputs are constants
  in it): two rows at +-_PROBE go through it, an output bounded by CLIP is
  the robust encoding, and a non-zero ``linear_name`` output its z-score
  companion. No second analysis, no extra artifact.
  """
  if not features.numeric:
    return {}
  raw = {}
  for name, spec in tf_transform_output.raw_feature_spec().items():
    numeric = name in features.numeric
    if spec.dtype == tf.string:
      values = tf.constant(['0', '0'])
    else:
      probe = int(_PROBE) if spec.dtype.is_integer else _PROBE
      values = tf.constant([probe, -probe] if numeric else [0, 0],
                           dtype=spec.dtype)
    if isinstance(spec, tf.io.FixedLenFeature):
      shape = list(spec.shape)
      raw[name] = (tf.reshape(values, [2] + shape) if shape in ([], [1]) else
                   tf.zeros([2] + shape, spec.dtype))
    else:
      raw[name] = tf.sparse.SparseTensor([[0, 0], [1, 0]], values, [2, 1])
  # The Keras layer loads Transform's graph in eager mode whether it was
  # written as TF1 (the pipeline's force_tf_compat_v1) or TF2.
  out = tf_transform_output.transform_features_layer()(raw)
  chosen = {}
  for name in features.numeric:
    probed = abs(out[transformed_name(name)].numpy().ravel())
    kind = ('constant' if not probed.any() else
            'robust' if probed.max() <= CLIP * (1 + 1e-4) else 'zscore')
    linear = out.get(linear_name(name))
    if kind == 'robust' and linear is not None and linear.numpy().any():
      kind = 'robust + zscore'
    chosen[name] = kind + (' of log' if name in features.log_scale else '')
  return chosen
