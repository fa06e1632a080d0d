"""Unit tests for components/trainer/inputs.py, the Trainer's data input.

The data is written here as Transform writes it (gzipped TFRecords of
tf.Example, with the transformed schema beside it) and every row carries its
own number, so each test can say exactly which rows a dataset served: all of
them once per epoch, in new batches each epoch, the same for the same seed,
in memory as when streamed, and split between workers without overlap.
"""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.python.data.experimental.ops import distribute as tf_distribute
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tensorflow_transform.tf_metadata import schema_utils
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import standard_artifacts

from components.trainer import inputs
from components.trainer import strategy as strategy_lib

LABEL = 'label'
ROWS_PER_FILE = (53, 47)  # 100 rows in two shards, as Transform may write.
BATCH = 16                # 100 = 6 x 16 + 4: a short last batch.
FEATURE_SPEC = {
    'row': tf.io.FixedLenFeature([1], tf.int64),
    'x': tf.io.FixedLenFeature([1], tf.float32),
    LABEL: tf.io.FixedLenFeature([1], tf.int64),
}


def _example(row: int) -> bytes:
  feature = {
      'row': tf.train.Feature(int64_list=tf.train.Int64List(value=[row])),
      'x': tf.train.Feature(float_list=tf.train.FloatList(value=[row / 10])),
      LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[row % 2])),
  }
  return tf.train.Example(
      features=tf.train.Features(feature=feature)).SerializeToString()


def _write_split(directory, rows_per_file=ROWS_PER_FILE, spec=None,
                 order=None):
  """A split of transformed examples and its transform output directory;
  ``order``: the row numbers in the order written (default ascending)."""
  split = os.path.join(directory, 'Split-train')
  os.makedirs(split)
  rows = iter(range(sum(rows_per_file)) if order is None else order)
  for i, count in enumerate(rows_per_file):
    path = os.path.join(
        split, f'transformed_examples-{i:05d}-of-{len(rows_per_file):05d}.gz')
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
      for _ in range(count):
        writer.write(_example(next(rows)))
  graph = os.path.join(directory, 'transform_graph')
  metadata_io.write_metadata(
      dataset_metadata.DatasetMetadata(
          schema_utils.schema_from_feature_spec(spec or FEATURE_SPEC)),
      os.path.join(graph, tft.TFTransformOutput.TRANSFORMED_METADATA_DIR))
  return [os.path.join(split, '*')], tft.TFTransformOutput(graph)


def _accessor() -> tfx.components.DataAccessor:
  examples = standard_artifacts.Examples()
  return tfx.components.DataAccessor(
      tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
          [examples], []),
      record_batch_factory=None, data_view_decode_fn=None)


def _read(tmp_path, *, max_in_memory_bytes=1 << 30, **kwargs):
  files, output = _write_split(str(tmp_path), **kwargs)
  return inputs.read_split(files, _accessor(), output, LABEL,
                           max_in_memory_bytes=max_in_memory_bytes)


def _epoch(dataset):
  """One pass: the batches, each as the list of its row numbers."""
  batches = []
  for features, label in dataset:
    rows = features['row'].numpy().ravel()
    np.testing.assert_array_equal(label.numpy().ravel(), rows % 2)
    np.testing.assert_allclose(features['x'].numpy().ravel(), rows / 10,
                               rtol=1e-6)
    batches.append(rows.tolist())
  return batches


@pytest.fixture(params=['in_memory', 'streamed'])
def split(request, tmp_path):
  bound = 1 << 30 if request.param == 'in_memory' else 0
  return _read(tmp_path, max_in_memory_bytes=bound)


def test_in_memory_split_holds_every_row_sorted_whatever_the_file_order(
    tmp_path):
  # Written descending, read back ascending: the model does not depend on
  # which runner wrote the files (the label is the last key).
  split = _read(tmp_path, order=range(sum(ROWS_PER_FILE) - 1, -1, -1))
  assert split.in_memory
  assert len(split.paths) == len(ROWS_PER_FILE)  # What sharding counts.
  features, label = split.columns
  assert sorted(features) == ['row', 'x']
  np.testing.assert_array_equal(features['row'].numpy().ravel(),
                                np.arange(sum(ROWS_PER_FILE)))
  np.testing.assert_array_equal(label.numpy().ravel(),
                                np.arange(sum(ROWS_PER_FILE)) % 2)


@pytest.mark.parametrize('bound', [1 << 30, 0], ids=['in_memory', 'streamed'])
def test_only_the_models_features_are_read(tmp_path, bound):
  files, output = _write_split(str(tmp_path))
  split = inputs.read_split(files, _accessor(), output, LABEL,
                            max_in_memory_bytes=bound, features=['row'])
  features, label = next(iter(inputs.make_dataset(split, BATCH, shuffle=False,
                                                  seed=1)))
  assert sorted(features) == ['row']  # Not x: no input of the model.
  np.testing.assert_array_equal(label.numpy().ravel(),
                                features['row'].numpy().ravel() % 2)


def test_a_split_above_the_bound_is_streamed(tmp_path):
  files, output = _write_split(str(tmp_path))
  size = sum(os.path.getsize(path) for path in glob.glob(files[0]))
  assert size > 0
  at = inputs.read_split(files, _accessor(), output, LABEL,
                         max_in_memory_bytes=size)
  above = inputs.read_split(files, _accessor(), output, LABEL,
                            max_in_memory_bytes=size - 1)
  assert at.in_memory and not above.in_memory
  assert above.columns is None


def test_unshuffled_serves_every_row_once_short_last_batch_included(split):
  batches = _epoch(inputs.make_dataset(split, BATCH, shuffle=False, seed=1))
  assert [len(b) for b in batches] == [BATCH] * 6 + [4]
  assert sorted(sum(batches, [])) == list(range(sum(ROWS_PER_FILE)))
  if split.in_memory:
    assert sum(batches, []) == list(range(sum(ROWS_PER_FILE)))  # File order.


def test_shuffled_epochs_are_full_new_batches_of_distinct_rows(split):
  dataset = inputs.make_dataset(split, BATCH, shuffle=True, seed=1)
  epochs = [_epoch(dataset) for _ in range(3)]
  for batches in epochs:
    assert [len(b) for b in batches] == [BATCH] * 6  # Full batches only.
    rows = sum(batches, [])
    assert len(set(rows)) == len(rows)
    assert rows != sorted(rows)
  # New batches each epoch, not the same batches in a new order.
  as_sets = [{frozenset(b) for b in batches} for batches in epochs]
  assert as_sets[0] != as_sets[1] != as_sets[2]


def test_in_memory_rows_are_all_served_over_epochs(tmp_path):
  # Only the 4 rows of the short batch are left out of an epoch, and not
  # always the same ones.
  dataset = inputs.make_dataset(_read(tmp_path), BATCH, shuffle=True, seed=1)
  served = set()
  for _ in range(10):
    served.update(sum(_epoch(dataset), []))
  assert served == set(range(sum(ROWS_PER_FILE)))


def test_the_same_seed_gives_the_same_batches(tmp_path):
  split = _read(tmp_path)
  first, second, other = (
      _epoch(inputs.make_dataset(split, BATCH, shuffle=True, seed=seed))
      for seed in (7, 7, 8))
  assert first == second
  assert first != other


def test_take_batches_and_endless_epochs(split):
  taken = _epoch(inputs.make_dataset(split, BATCH, shuffle=False, seed=1,
                                     take_batches=2))
  assert [len(b) for b in taken] == [BATCH, BATCH]
  endless = inputs.make_dataset(split, BATCH, shuffle=True, seed=1,
                                num_epochs=None)
  rows = [r for batch in _epoch(endless.take(15)) for r in batch]
  assert len(rows) == 15 * BATCH  # More than two epochs' worth, no end.


def test_an_in_memory_sample_is_a_fixed_random_subset_of_the_sorted_rows(
    tmp_path):
  # The curves' train sample: not the smallest rows of the sorted split.
  dataset = inputs.make_dataset(_read(tmp_path), BATCH, shuffle=False,
                                seed=1, take_batches=2)
  first, second = _epoch(dataset), _epoch(dataset)
  assert first == second  # The same rows every epoch.
  rows = sorted(r for batch in first for r in batch)
  assert len(set(rows)) == 2 * BATCH
  assert rows != list(range(2 * BATCH)) and rows[-1] > 2 * BATCH


def test_in_memory_batches_are_shared_between_two_workers(tmp_path):
  """The DATA policy apply_sharding picks for an in-memory split, applied by
  TF's auto-shard rewrite as each of 2 workers would: disjoint full batches,
  every served row once."""
  split = _read(tmp_path)
  policy = strategy_lib.shard_policy(2, 2, in_memory=True)
  assert policy == tf.data.experimental.AutoShardPolicy.DATA
  shares = []
  for index in range(2):
    dataset = inputs.make_dataset(split, BATCH, shuffle=True, seed=3)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    sharded = tf_distribute._AutoShardDataset(  # pylint: disable=protected-access
        dataset.with_options(options), 2, index, num_replicas=2)
    shares.append(sum(_epoch(sharded), []))
  assert all(len(share) == 3 * BATCH for share in shares)
  assert not set(shares[0]) & set(shares[1])


def test_an_empty_split_is_an_input_error(tmp_path):
  with pytest.raises(inputs.InputError, match='no examples') as e:
    _read(tmp_path, rows_per_file=(0,))
  assert 'Split-train' in str(e.value)


def test_a_sparse_feature_cannot_be_held_in_memory(tmp_path):
  spec = dict(FEATURE_SPEC, tags=tf.io.VarLenFeature(tf.string))
  with pytest.raises(inputs.InputError, match=r"\['tags'\].*in_memory_max_mb"):
    _read(tmp_path, spec=spec)


def test_a_missing_label_is_an_input_error(tmp_path):
  spec = {k: v for k, v in FEATURE_SPEC.items() if k != LABEL}
  with pytest.raises(inputs.InputError, match="no label 'label'"):
    _read(tmp_path, spec=spec)
