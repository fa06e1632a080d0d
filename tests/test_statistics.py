"""The in-memory StatisticsGen writes the stock StatisticsGen's statistics.

A small Examples artifact (two splits, two gzipped shards each) is written
with the cases that tell implementations apart: absent features, present but
empty lists, multi-valued strings, NaNs, and a string feature with 1,500
distinct values (TFDV's in-memory sketch is approximate above about 1,000,
the stock Beam path and ours count exactly).  Stock and ours run on it and
are compared per split and per feature; SchemaGen infers the same schema from
both, and the fallback to Beam is taken above the size threshold.
"""

import math
import os
import random
from unittest import mock

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import v1 as tfx
from tfx.components.schema_gen import executor as schema_gen_executor
from tfx.components.statistics_gen import executor as stock_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import io_utils, name_utils

from components.statistics import compute
from components.statistics import executor as fast_executor
from components.statistics.component import StatisticsGen

SPLITS = {'train': 3000, 'eval': 800}
CITIES = 1500  # Above the 1,024 Misra-Gries counters of TFDV's sketch.
REL = 1e-6


def _feature(kind, values):
  if kind == 'bytes':
    return tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[v.encode() for v in values]))
  if kind == 'int':
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _example(rng: random.Random) -> bytes:
  # Zipf-like city counts: many ties in the tail, a clear head.
  city = int(CITIES * rng.random() ** 3)
  feature = {
      'city': _feature('bytes', [f'city_{city:04d}']),
      'age': _feature('int', [rng.randint(18, 90)]),
      'label': _feature('int', [int(rng.random() < 0.3)]),
      'bucket': _feature('int', [rng.randint(0, 6)]),
  }
  if rng.random() < 0.9:  # Otherwise absent: missing.
    feature['color'] = _feature(
        'bytes', [rng.choice(['red', 'green', 'blue', 'cyan', 'ochre'])])
  if rng.random() < 0.8:
    # 0 to 3 tags: zero is a present, empty list (not missing).
    feature['tags'] = _feature('bytes', rng.sample(
        ['a', 'b', 'c', 'd', 'e', 'f'], rng.randint(0, 3)))
  score = rng.gauss(50.0, 12.0)
  if rng.random() < 0.02:
    score = math.nan
  if rng.random() < 0.95:
    feature['score'] = _feature('float', [score])
  return tf.train.Example(
      features=tf.train.Features(feature=feature)).SerializeToString()


def _write_examples(root: str) -> standard_artifacts.Examples:
  rng = random.Random(7)
  for split, rows in SPLITS.items():
    folder = os.path.join(root, f'Split-{split}')
    os.makedirs(folder)
    for shard in range(2):
      path = os.path.join(folder, f'data_tfrecord-{shard:05d}-of-00002.gz')
      with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for _ in range(rows // 2):
          writer.write(_example(rng))
  examples = standard_artifacts.Examples()
  examples.uri = root
  examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
  examples.span = 3
  return examples


def _run(executor_class, examples, out_dir, schema_uri=None,
         stats_options=None):
  statistics = standard_artifacts.ExampleStatistics()
  statistics.uri = out_dir
  os.makedirs(out_dir, exist_ok=True)
  inputs = {keys.EXAMPLES_KEY: [examples]}
  if schema_uri:
    schema = standard_artifacts.Schema()
    schema.uri = schema_uri
    inputs[keys.SCHEMA_KEY] = [schema]
  properties = {keys.EXCLUDE_SPLITS_KEY: '[]'}
  if stats_options is not None:
    properties[keys.STATS_OPTIONS_JSON_KEY] = stats_options.to_json()
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=[], tmp_dir=os.path.join(out_dir, '.tmp'))
  executor_class(context).Do(inputs, {keys.STATISTICS_KEY: [statistics]},
                             properties)
  return statistics


def _load(statistics, split) -> statistics_pb2.DatasetFeatureStatisticsList:
  return tfdv.load_stats_binary(os.path.join(
      artifact_utils.get_split_uri([statistics], split),
      stock_executor.DEFAULT_FILE_NAME))


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
  return _write_examples(str(tmp_path_factory.mktemp('examples')))


@pytest.fixture(scope='module')
def stock(examples, tmp_path_factory):
  return _run(stock_executor.Executor, examples,
              str(tmp_path_factory.mktemp('stock')))


@pytest.fixture(scope='module')
def ours(examples, tmp_path_factory):
  # The stock (Beam) path must not run: the numbers are ours.
  with mock.patch.object(stock_executor.Executor, 'Do') as beam_do:
    statistics = _run(fast_executor.Executor, examples,
                      str(tmp_path_factory.mktemp('ours')))
  beam_do.assert_not_called()
  return statistics


def _close(a: float, b: float) -> bool:
  if math.isnan(a) or math.isnan(b):
    return math.isnan(a) and math.isnan(b)
  return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def _assert_histogram_close(expected: statistics_pb2.Histogram,
                            actual: statistics_pb2.Histogram, span: float):
  """Same kind, bucket count and total; boundaries within 2% of the range.

  Quantile histograms come from tfx_bsl's quantile sketch (epsilon 0.01),
  whose state depends on how the input was batched and merged (Beam's
  bundles versus our 8,192-row batches), so they may move a little.
  """
  assert expected.type == actual.type
  assert len(expected.buckets) == len(actual.buckets)
  assert _close(sum(b.sample_count for b in expected.buckets),
                sum(b.sample_count for b in actual.buckets))
  assert expected.num_nan == actual.num_nan
  for e, a in zip(expected.buckets, actual.buckets):
    assert abs(e.low_value - a.low_value) <= 0.02 * span
    assert abs(e.high_value - a.high_value) <= 0.02 * span


def _assert_feature_close(expected: statistics_pb2.FeatureNameStatistics,
                          actual: statistics_pb2.FeatureNameStatistics):
  name = '.'.join(expected.path.step)
  assert expected.type == actual.type, name
  assert expected.WhichOneof('stats') == actual.WhichOneof('stats'), name
  if expected.HasField('num_stats'):
    e, a = expected.num_stats, actual.num_stats
    common_e, common_a = e.common_stats, a.common_stats
    for field in ('mean', 'std_dev', 'min', 'max'):
      assert _close(getattr(e, field), getattr(a, field)), (name, field)
    assert e.num_zeros == a.num_zeros, name
    span = (e.max - e.min) or 1.0
    assert abs(e.median - a.median) <= 0.02 * span, name
    assert len(e.histograms) == len(a.histograms), name
    for he, ha in zip(e.histograms, a.histograms):
      _assert_histogram_close(he, ha, span)
  else:
    e, a = expected.string_stats, actual.string_stats
    common_e, common_a = e.common_stats, a.common_stats
    assert e.unique == a.unique, name
    assert _close(e.avg_length, a.avg_length), name
    # Exact counts on both sides, ties broken the same way.
    assert list(e.top_values) == list(a.top_values), name
    assert e.rank_histogram == a.rank_histogram, name
  for field in ('num_non_missing', 'num_missing', 'min_num_values',
                'max_num_values', 'tot_num_values'):
    assert getattr(common_e, field) == getattr(common_a, field), (name, field)
  assert _close(common_e.avg_num_values, common_a.avg_num_values), name
  span = (common_e.max_num_values - common_e.min_num_values) or 1.0
  _assert_histogram_close(common_e.num_values_histogram,
                          common_a.num_values_histogram, span)


def _assert_statistics_close(expected, actual):
  assert len(expected.datasets) == len(actual.datasets) == 1
  e, a = expected.datasets[0], actual.datasets[0]
  assert (e.name, e.num_examples, e.weighted_num_examples) == (
      a.name, a.num_examples, a.weighted_num_examples)
  by_path = lambda d: {tuple(f.path.step): f for f in d.features}
  e_features, a_features = by_path(e), by_path(a)
  assert sorted(e_features) == sorted(a_features)
  for path, feature in e_features.items():
    _assert_feature_close(feature, a_features[path])


def test_same_statistics_per_split_and_feature(stock, ours):
  assert artifact_utils.decode_split_names(ours.split_names) == list(SPLITS)
  for split, rows in SPLITS.items():
    expected, actual = _load(stock, split), _load(ours, split)
    assert actual.datasets[0].num_examples == rows
    _assert_statistics_close(expected, actual)
  # The cases this data is built to exercise are really there.
  train = {f.path.step[0]: f for f in _load(ours, 'train').datasets[0].features}
  assert train['color'].string_stats.common_stats.num_missing > 0
  assert train['tags'].string_stats.common_stats.min_num_values == 0
  assert train['city'].string_stats.unique > 1024
  assert len(train['city'].string_stats.rank_histogram.buckets) == 1000


def test_same_artifact_properties(stock, ours):
  for name in (stock_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,
               stock_executor.STATS_DASHBOARD_LINK):
    assert (stock.get_custom_property(name) ==
            ours.get_custom_property(name)), name
  assert (stock.span, stock.split_names) == (ours.span, ours.split_names)
  for split in SPLITS:
    assert (os.listdir(artifact_utils.get_split_uri([stock], split)) ==
            os.listdir(artifact_utils.get_split_uri([ours], split)) ==
            [stock_executor.DEFAULT_FILE_NAME])


def _schema_gen(statistics, out_dir) -> schema_pb2.Schema:
  schema = standard_artifacts.Schema()
  schema.uri = out_dir
  os.makedirs(out_dir)
  schema_gen_executor.Executor().Do(
      {keys.STATISTICS_KEY: [statistics]}, {keys.SCHEMA_KEY: [schema]},
      {keys.INFER_FEATURE_SHAPE_KEY: 1, keys.EXCLUDE_SPLITS_KEY: '[]'})
  return io_utils.SchemaReader().read(
      io_utils.get_only_uri_in_dir(out_dir))


def test_schema_gen_infers_the_same_schema(stock, ours, tmp_path):
  expected = _schema_gen(stock, str(tmp_path / 'stock'))
  actual = _schema_gen(ours, str(tmp_path / 'ours'))
  by_name = lambda s: sorted(s.feature, key=lambda f: f.name)
  assert by_name(expected) == by_name(actual)
  assert ({d.name: d for d in expected.string_domain} ==
          {d.name: d for d in actual.string_domain})
  # ExampleValidator's check: our eval statistics against the stock schema.
  anomalies = tfdv.validate_statistics(_load(ours, 'eval'), expected)
  reference = tfdv.validate_statistics(_load(stock, 'eval'), expected)
  assert (sorted(anomalies.anomaly_info) ==
          sorted(reference.anomaly_info))


def test_schema_input_and_categorical_ints_match(examples, stock, tmp_path):
  # With a schema input, categorical INT features get top-k too.
  schema = tfdv.infer_schema(_load(stock, 'train'))
  tfdv.get_feature(schema, 'bucket').int_domain.is_categorical = True
  schema_dir = tmp_path / 'schema'
  schema_dir.mkdir()
  io_utils.write_pbtxt_file(str(schema_dir / 'schema.pbtxt'), schema)
  expected = _run(stock_executor.Executor, examples, str(tmp_path / 'stock'),
                  schema_uri=str(schema_dir))
  with mock.patch.object(stock_executor.Executor, 'Do') as beam_do:
    actual = _run(fast_executor.Executor, examples, str(tmp_path / 'ours'),
                  schema_uri=str(schema_dir))
  beam_do.assert_not_called()
  for split in SPLITS:
    _assert_statistics_close(_load(expected, split), _load(actual, split))
  bucket = tfdv.get_feature_stats(_load(actual, 'train').datasets[0],
                                  tfdv.FeaturePath(['bucket']))
  assert bucket.string_stats.unique == 7


def test_beam_fallback_above_the_size_threshold(examples, stock, tmp_path):
  class Tiny(fast_executor.Executor):
    MAX_IN_MEMORY_BYTES = 1000  # The shards are a few KB each.

  beam_do = stock_executor.Executor.Do
  with mock.patch.object(stock_executor.Executor, 'Do', autospec=True,
                         side_effect=beam_do) as spy:
    statistics = _run(Tiny, examples, str(tmp_path / 'out'))
  spy.assert_called_once()
  for split in SPLITS:
    _assert_statistics_close(_load(stock, split), _load(statistics, split))


def test_options_that_need_beam_are_detected():
  assert compute.unsupported_reason(tfdv.StatsOptions()) is None
  assert compute.unsupported_reason(tfdv.StatsOptions(sample_rate=1.0)) is None
  assert compute.unsupported_reason(
      tfdv.StatsOptions(sample_rate=0.5)) == 'sampling'
  assert compute.unsupported_reason(
      tfdv.StatsOptions(weight_feature='w')) == 'example weights'
  lift = tfdv.StatsOptions(
      schema=schema_pb2.Schema(feature=[
          schema_pb2.Feature(name='label', type=schema_pb2.INT,
                             int_domain=schema_pb2.IntDomain(
                                 is_categorical=True))]),
      label_feature='label')
  assert 'Beam transform' in compute.unsupported_reason(lift)


def test_forked_workers_give_the_same_statistics(examples):
  files = sorted(tf.io.gfile.glob(os.path.join(
      artifact_utils.get_split_uri([examples], 'train'), '*')))
  records = [r.numpy() for r in tf.data.TFRecordDataset(
      files, compression_type='GZIP')]
  batches = [records[i:i + 250] for i in range(0, len(records), 250)]
  options = tfdv.StatsOptions()
  one = compute.generate_statistics(batches, options, workers=1)
  # Three workers over chunks of 1,000 rows: forks, merges across chunks.
  three = compute.generate_statistics(batches, options, workers=3,
                                      chunk_rows=1000)
  _assert_statistics_close(one, three)


def test_feature_allowlist_matches_stock(examples, tmp_path):
  # 'nope' is in no example: both paths skip it.
  options = tfdv.StatsOptions(feature_allowlist=['score', 'color', 'nope'])
  stock_run = _run(stock_executor.Executor, examples, str(tmp_path / 'stock'),
                   stats_options=options)
  with mock.patch.object(stock_executor.Executor, 'Do') as beam_do:
    ours_run = _run(fast_executor.Executor, examples, str(tmp_path / 'ours'),
                    stats_options=options)
  beam_do.assert_not_called()
  for split in SPLITS:
    expected, actual = _load(stock_run, split), _load(ours_run, split)
    _assert_statistics_close(expected, actual)
    assert sorted(f.path.step[0] for f in actual.datasets[0].features) == [
        'color', 'score']


def test_a_failing_worker_is_reported():
  def fail_in_child(part):
    if part == 'child':
      raise KeyError('boom')
    return part

  with pytest.raises(compute.WorkerError, match='boom'):
    compute.map_forked(fail_in_child, ['parent', 'child'])
  assert compute.map_forked(str.upper, ['a', 'b', 'c']) == ['A', 'B', 'C']


def test_component_swaps_only_the_executor():
  stock_component = tfx.components.StatisticsGen
  assert StatisticsGen.SPEC_CLASS is stock_component.SPEC_CLASS
  assert (type(StatisticsGen.EXECUTOR_SPEC) is
          type(stock_component.EXECUTOR_SPEC))  # BeamExecutorSpec
  executor_class = StatisticsGen.EXECUTOR_SPEC.executor_class
  assert issubclass(executor_class, stock_executor.Executor)
  # The path the Kubeflow spec names; it must import from the package.
  assert (name_utils.get_full_name(executor_class) ==
          'components.statistics.executor.Executor')
  examples = tfx.dsl.Channel(type=standard_artifacts.Examples)
  node = StatisticsGen(examples=examples, exclude_splits=['test'])
  assert node.exec_properties[keys.EXCLUDE_SPLITS_KEY] == '["test"]'
