"""Data input for the Trainer: tf.data pipelines over Transform's output.

tfxio's dataset factory reads the TFRecord shards in parallel and parses a
whole batch at once (batching before mapping); we add caching and prefetching.
"""

from typing import List, Optional

import tensorflow as tf
from tfx import v1 as tfx
from tfx_bsl.public import tfxio
import tensorflow_transform as tft

SHUFFLE_BUFFER = 16_384  # Examples; the whole taxi train split.


def make_dataset(file_pattern: List[str],
                 data_accessor: tfx.components.DataAccessor,
                 tf_transform_output: tft.TFTransformOutput,
                 label_key: str,
                 batch_size: int,
                 *,
                 shuffle: bool,
                 seed: int,
                 num_epochs: Optional[int] = 1,
                 take_batches: Optional[int] = None,
                 cache: bool = True) -> tf.data.Dataset:
  """Batches of ``(features, label)`` from transformed examples.

  ``num_epochs=None`` repeats forever (used with a step budget);
  ``take_batches`` bounds the dataset, e.g. for the train-side curve sample.
  """
  dataset = data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size,
          label_key=label_key,
          shuffle=shuffle,
          shuffle_seed=seed,
          num_epochs=1,
          drop_final_batch=False),
      tf_transform_output.transformed_metadata.schema)
  if take_batches is not None:
    dataset = dataset.take(take_batches)
  if cache:
    # Tabular splits fit in memory: parse once, not every epoch.
    dataset = dataset.cache()
    if shuffle:
      # New batches every epoch, not just a new batch order: reshuffling the
      # same batches measurably widened the overfitting gap on the taxi data.
      dataset = (dataset.unbatch()
                 .shuffle(SHUFFLE_BUFFER, seed=seed,
                          reshuffle_each_iteration=True)
                 # Full batches only: tf.distribute splits a short last batch
                 # unevenly between replicas (e.g. 8 -> 8 + 0), which weights
                 # its per-replica mean losses wrongly.
                 .batch(batch_size, drop_remainder=True))
  if num_epochs != 1:
    dataset = dataset.repeat(num_epochs)
  return dataset.prefetch(tf.data.AUTOTUNE)
