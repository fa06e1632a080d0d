"""Data input for the Trainer: tf.data pipelines over Transform's output.

A split is fed to ``fit`` in one of two ways, chosen by the size of its files:

* **In memory**, the usual case for tabular data: the split is read and
  parsed once, in a few large calls, into one tensor per column, its rows
  sorted so that the model does not depend on the order the files were
  written in.  Each epoch then shuffles the row *indices* and gathers whole
  batches from the columns, which is what Keras does with NumPy arrays.
  Shuffling the rows themselves (``unbatch``/``shuffle``/``batch`` over a
  cache) cost 0.3 s per epoch of the taxi train split against 0.05 s
  (docs/performance.md, P3).
* **Streamed**, above ``max_in_memory_bytes``: tfxio reads the shards in
  parallel, shuffles file order and records (through its buffer) and parses a
  batch at a time (batching before mapping); nothing is cached.

Training datasets draw new batches every epoch, not just a new batch order:
reshuffling the same batches measurably widened the overfitting gap on the
taxi data.  They hold full batches only: tf.distribute splits a short last
batch unevenly between replicas (e.g. 8 -> 8 + 0), which weights their
per-replica mean losses wrongly.
"""

import dataclasses
from typing import Callable, Collection, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from core import records

# Records parsed per call while loading a split into memory: few, large calls.
LOAD_BATCH_ROWS = 65_536

Columns = Tuple[Dict[str, tf.Tensor], tf.Tensor]  # (features, label)
Stream = Callable[[tfxio.TensorFlowDatasetOptions], tf.data.Dataset]


class InputError(ValueError):
  """A split cannot be fed to the model."""


@dataclasses.dataclass(frozen=True)
class Split:
  """One split of transformed examples: its rows in memory, or streamed.

  ``files`` are the patterns TFX passed, ``paths`` the files they matched
  (globbed once, here); ``columns`` holds every row (features by name, and
  the label) when the split is in memory, else None; ``stream`` reads the
  files through tfxio.
  """
  files: Tuple[str, ...]
  paths: Tuple[str, ...]
  label_key: str
  stream: Stream
  columns: Optional[Columns] = None

  @property
  def in_memory(self) -> bool:
    return self.columns is not None


def read_split(file_patterns: Sequence[str],
               data_accessor: tfx.components.DataAccessor,
               tf_transform_output: tft.TFTransformOutput,
               label_key: str,
               *,
               max_in_memory_bytes: int,
               features: Optional[Collection[str]] = None) -> Split:
  """The split at ``file_patterns``, loaded into memory if its files fit;
  with ``features`` (the model's input names), only those and the label.

  Raises InputError when an in-memory split has no rows, no label, or a
  feature that is not dense (Transform's output for this pipeline is dense
  throughout).
  """
  files = tuple(file_patterns)
  paths = tuple(records.glob(files, sort=False))
  schema = tf_transform_output.transformed_metadata.schema
  feature_spec = tf_transform_output.transformed_feature_spec()
  if features is not None:
    kept = set(features) | {label_key}
    feature_spec = {k: v for k, v in feature_spec.items() if k in kept}
    schema = type(schema)()
    schema.CopyFrom(tf_transform_output.transformed_metadata.schema)
    del schema.feature[:]
    schema.feature.extend(
        f for f in tf_transform_output.transformed_metadata.schema.feature
        if f.name in kept)

  def stream(options: tfxio.TensorFlowDatasetOptions) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(list(files), options, schema)

  size = records.size_above(paths, max_in_memory_bytes)
  if size is not None:
    logging.info('Streaming %s: %d bytes of files, above the in-memory '
                 'bound of %d', files, size, max_in_memory_bytes)
    return Split(files, paths, label_key, stream)
  columns = _load(files, paths, feature_spec, label_key)
  return Split(files, paths, label_key, stream, columns)


def _load(files: Tuple[str, ...], paths: Tuple[str, ...],
          feature_spec: Dict[str, object], label_key: str) -> Columns:
  """Every row of ``files``, parsed eagerly.

  Transform writes gzipped TFRecords of tf.Example (the payload tfxio assumes
  for them too).  Parsing them here in a few large eager calls takes about
  0.1 s on the taxi train split, against 0.4 s through tfxio's dataset, whose
  set-up (function tracing, graph rewrites) pays off only when streaming.
  """
  sparse = sorted(name for name, spec in feature_spec.items()
                  if not isinstance(spec, tf.io.FixedLenFeature))
  if sparse:
    raise InputError(
        f'{files}: features {sparse} are not fixed-length; only dense '
        'features can be held in memory (set model.in_memory_max_mb: 0 to '
        'stream)')
  if label_key not in feature_spec:
    raise InputError(f'{files}: no label {label_key!r} among the transformed '
                     f'features {sorted(feature_spec)}')
  parts: Dict[str, list] = {name: [] for name in feature_spec}
  for serialized in records.dataset(paths).batch(LOAD_BATCH_ROWS):
    for name, tensor in tf.io.parse_example(serialized, feature_spec).items():
      parts[name].append(tensor)
  if not parts[label_key]:
    raise InputError(f'{files}: no examples to train or evaluate on')
  columns = {name: tf.concat(tensors, 0) for name, tensors in parts.items()}
  columns = _sorted_rows(columns, sorted(set(columns) - {label_key}) +
                         [label_key])
  return columns, columns.pop(label_key)


def _sorted_rows(columns: Dict[str, tf.Tensor],
                 names: Sequence[str]) -> Dict[str, tf.Tensor]:
  """The rows sorted by their values in ``names``, the first most
  significant.

  ExampleGen's in-process and Beam paths write the same rows in different
  orders, and so do Beam runners; a seeded shuffle of the rows as read
  would then train a different model on the same data. Sorted, the rows
  reach the shuffle in one order whoever wrote them (Transform's encodings
  are monotonic per column, so a last-bit difference in its statistics
  cannot reorder two distinct rows).
  """
  keys = []
  for name in names:
    values = columns[name].numpy()
    if values.dtype.kind in 'biuf':
      keys.extend(values.reshape(len(values), -1).T)
  if not keys:
    return columns
  order = tf.constant(np.lexsort(keys[::-1]))  # lexsort: last key first.
  return {name: tf.gather(column, order) for name, column in columns.items()}


def labels(split: Split) -> 'np.ndarray':
  """Every label of ``split``, as numpy: from memory, or one pass over the
  label column of a streamed split."""
  if split.in_memory:
    return split.columns[1].numpy()
  dataset = split.stream(tfxio.TensorFlowDatasetOptions(
      batch_size=LOAD_BATCH_ROWS, label_key=split.label_key, num_epochs=1))
  parts = [label.numpy() for _, label in dataset]
  if not parts:
    raise InputError(f'{split.files}: no examples to train or evaluate on')
  return np.concatenate(parts)


def make_dataset(split: Split,
                 batch_size: int,
                 *,
                 shuffle: bool,
                 seed: int,
                 num_epochs: Optional[int] = 1,
                 take_batches: Optional[int] = None) -> tf.data.Dataset:
  """Batches of ``(features, label)`` from ``split``.

  ``shuffle`` draws new, full batches each epoch; without it every row comes
  once, in the split's order.  ``num_epochs=None`` repeats forever (used with
  a step budget); ``take_batches`` bounds each epoch, e.g. for the train-side
  curve sample: unshuffled, the same rows every epoch, a seeded random
  subset of an in-memory split (whose rows are sorted, so its first rows
  would be its smallest values) and the first rows of a streamed one.
  """
  if split.in_memory:
    dataset = _gathered(split.columns, batch_size, shuffle=shuffle, seed=seed,
                        take_batches=take_batches)
  else:
    dataset = split.stream(tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size, label_key=split.label_key, shuffle=shuffle,
        shuffle_seed=seed, num_epochs=1, drop_final_batch=shuffle))
  if take_batches is not None:
    dataset = dataset.take(take_batches)
  if num_epochs != 1:
    dataset = dataset.repeat(num_epochs)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _gathered(columns: Columns, batch_size: int, *, shuffle: bool,
              seed: int, take_batches: Optional[int] = None) -> tf.data.Dataset:
  """Index batches (a new permutation per iteration, or the fixed sample
  of ``make_dataset``'s ``take_batches``) gathered from columns."""
  features, labels = columns
  rows = int(labels.shape[0])
  if take_batches is not None and not shuffle:
    sample = np.random.default_rng(seed).permutation(rows)[
        :take_batches * batch_size]
    indices = tf.data.Dataset.from_tensor_slices(np.sort(sample))
  else:
    indices = tf.data.Dataset.range(rows)
    if shuffle:
      indices = indices.shuffle(rows, seed=seed, reshuffle_each_iteration=True)
  indices = indices.batch(batch_size, drop_remainder=shuffle)

  def gather(index):
    return ({name: tf.gather(column, index)
             for name, column in features.items()},
            tf.gather(labels, index))

  return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
