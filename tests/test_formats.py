"""Input formats (components/ingest/formats.py): data as users have it.

Each format's in-process executor against its stock TFX route, row for row
as tests/test_ingest.py does for one CSV file (per split, the multisets of
deterministically re-serialized examples, and the artifact properties):

* CSV shards, plain and gzip, against stock ``CsvExampleGen`` (which cannot
  read gzip itself: compared with stock on the same rows uncompressed), in
  process and on the Beam fallback;
* Parquet against ``FileBasedExampleGen`` with TFX's ``parquet_executor``
  converting rows with ours ``dict_to_example`` (``stock_zeros_kept``): the
  same examples but that 0, 0.0 and false are values;
* TFRecord files, plain and gzip, against stock ``ImportExampleGen``.

Then paths (file, folder, glob; local listing and the string rules a
Kubeflow spec compiles with), shards whose headers disagree, the pre-run
check on each format, the component each format builds, and one end-to-end
run on Parquet (``e2e``).
"""

import gzip
import os
import random
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen.csv_example_gen import executor as stock_csv
from tfx.components.example_gen.csv_example_gen.component import CsvExampleGen
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.components.example_gen.import_example_gen import executor as stock_import
from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

import small_run
from components.ingest import component, csv_fast, formats
from core import config as config_lib
from pipeline import preflight
from test_ingest import STOCK, _assert_same, _props, _run, _splits, _tricky_rows, _write_csv


def test_format_names_are_the_configuration_s():
  assert set(formats.NAMES) == set(config_lib.DATA_FORMATS) - {formats.AUTO}


def _props_for(path, fmt=formats.AUTO, **kwargs):
  """Executor properties for ``path`` as the local runner derives them."""
  found = formats.find(str(path), fmt)
  return _props(found.location.root, {'all': found.location.pattern},
                **kwargs)


# ---------------------------------------------------------------------------
# CSV: shards and gzip


def _gzip(path):
  with open(path, 'rb') as f, gzip.open(str(path) + '.gz', 'wb') as g:
    g.write(f.read())
  os.remove(path)


@pytest.fixture(scope='module')
def csv_shards(tmp_path_factory):
  """Three plain shards and the same three gzipped, stock's output for the
  plain ones."""
  root = tmp_path_factory.mktemp('shards')
  plain, zipped = root / 'plain', root / 'zipped'
  plain.mkdir()
  zipped.mkdir()
  rows = _tricky_rows(300)
  for i, part in enumerate((rows[:90], rows[90:200], rows[200:])):
    _write_csv(plain / f'part-{i}.csv', part)
    shutil.copy(plain / f'part-{i}.csv', zipped / f'part-{i}.csv')
    _gzip(zipped / f'part-{i}.csv')
  (plain / '_SUCCESS').write_text('')  # Spark's marker: not data.
  stock = _run(stock_csv.Executor, str(root / 'stock'), _props_for(plain))
  return root, plain, zipped, stock


def test_csv_folder_of_shards_matches_stock(csv_shards):
  root, plain, _, stock = csv_shards
  found = formats.find(str(plain))
  assert found.format is formats.CSV
  assert found.location == formats.Location(str(plain), '*.csv')
  assert [os.path.basename(f) for f in found.files] == [
      'part-0.csv', 'part-1.csv', 'part-2.csv']
  ours = _run(component.ArrowCsvExecutor, str(root / 'ours'),
              _props_for(plain, missing_values=STOCK))
  _assert_same(stock, ours)


def test_csv_gzip_shards_match_stock_on_the_plain_files(csv_shards,
                                                         beam_calls):
  root, _, zipped, stock = csv_shards
  assert formats.find(str(zipped)).location.pattern == '*.csv.gz'
  ours = _run(component.ArrowCsvExecutor, str(root / 'gz'),
              _props_for(zipped, missing_values=STOCK))
  assert beam_calls == []
  _assert_same(stock, ours)


def test_csv_gzip_on_the_beam_fallback_matches_stock(csv_shards, beam_calls,
                                                     monkeypatch):
  # Stock alone fails on gzip (it reads the header line compressed); the
  # fallback reads the header as the in-process path does.
  root, _, zipped, stock = csv_shards
  with pytest.raises(UnicodeDecodeError):
    _run(stock_csv.Executor, str(root / 'stock-gz'), _props_for(zipped))
  monkeypatch.setattr(component, 'MAX_IN_MEMORY_BYTES', 1)
  ours = _run(component.ArrowCsvExecutor, str(root / 'gz-beam'),
              _props_for(zipped, missing_values=STOCK))
  assert beam_calls[-1] == 'ArrowCsvExecutor'
  _assert_same(stock, ours)


def test_concatenated_gzip_members_are_read(tmp_path):
  # What `cat a.gz b.gz` and some exporters write: Beam and Arrow read both.
  rows = _tricky_rows(80)
  _write_csv(tmp_path / 'a.csv', rows)
  text = (tmp_path / 'a.csv').read_bytes()
  cut = text.index(b'\n', len(text) // 2) + 1
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'x.csv.gz').write_bytes(gzip.compress(text[:cut])
                                  + gzip.compress(text[cut:]))
  expected = _splits(_run(component.ArrowCsvExecutor, str(tmp_path / 'a'),
                          _props_for(tmp_path / 'a.csv')))
  assert _splits(_run(component.ArrowCsvExecutor, str(tmp_path / 'b'),
                      _props_for(data / 'x.csv.gz'))) == expected


def test_shards_with_different_headers_are_refused(tmp_path):
  (tmp_path / 'a.csv').write_text('x,y\n1,2\n')
  (tmp_path / 'b.csv').write_text('y,x\n3,4\n')
  props = _props_for(tmp_path)
  with pytest.raises(formats.InputError) as info:
    _run(component.ArrowCsvExecutor, str(tmp_path / 'out'), props)
  message = str(info.value)
  for part in (str(tmp_path / 'a.csv'), "['x', 'y']",
               str(tmp_path / 'b.csv'), "['y', 'x']"):
    assert part in message
  # The Beam fallback reads the headers with this same function.
  with pytest.raises(formats.InputError, match='header differs'):
    formats.CSV.headers([str(tmp_path / 'a.csv'), str(tmp_path / 'b.csv')])


# ---------------------------------------------------------------------------
# Parquet


@pytest.fixture
def stock_zeros_kept(monkeypatch):
  """Stock's Parquet route with its one difference from ours undone:
  ``dict_to_example`` writing 0, 0.0 and false as values."""
  monkeypatch.setattr(parquet_executor.utils, 'dict_to_example',
                      component.dict_to_example)
  return parquet_executor.Executor


def _parquet_table(n, seed):
  """Every flat type, with the values stock's dict_to_example writes as
  missing (zeros, false, empty strings) and ours as values (but '')."""
  rng = random.Random(seed)

  def maybe(value, p=0.1):
    return None if rng.random() < p else value
  return pa.table({
      'i64': pa.array([maybe(rng.choice([0, 1, -1, 2**63 - 1, -2**63,
                                         rng.randint(-999, 999)]))
                       for _ in range(n)], pa.int64()),
      'i8': pa.array([maybe(rng.randint(-128, 127)) for _ in range(n)],
                     pa.int8()),
      'u32': pa.array([maybe(rng.choice([0, 2**32 - 1, 7])) for _ in range(n)],
                      pa.uint32()),
      'f64': pa.array([maybe(rng.choice([0.0, -0.0, float('nan'), float('inf'),
                                         1e39, 1e-50, 0.1,
                                         rng.uniform(-1e6, 1e6)]))
                       for _ in range(n)], pa.float64()),
      'f32': pa.array([maybe(rng.choice([0.0, 0.1, 3.5])) for _ in range(n)],
                      pa.float32()),
      'flag': pa.array([maybe(rng.random() < 0.5) for _ in range(n)],
                       pa.bool_()),
      'text': pa.array([maybe(rng.choice(['', 'a', 'ünï', 'with, comma',
                                          'x' * 300])) for _ in range(n)]),
      'blob': pa.array([maybe(rng.choice([b'', b'raw', 'é'.encode()]))
                        for _ in range(n)], pa.binary()),
      'category': pa.array([maybe(rng.choice(['red', 'green']))
                            for _ in range(n)]).dictionary_encode(),
      'nothing': pa.nulls(n),
      'zeros': pa.array([0] * n, pa.int64()),  # Stock: all empty Features.
      'row': pa.array(range(seed * 1000, seed * 1000 + n), pa.int64()),
  })


def test_parquet_matches_stocks_parquet_executor(tmp_path, beam_calls,
                                                 stock_zeros_kept):
  data = tmp_path / 'data'
  data.mkdir()
  pq.write_table(_parquet_table(250, 1), data / 'part-0.parquet')
  pq.write_table(_parquet_table(150, 2), data / 'part-1.parquet',
                 row_group_size=40)
  props = _props_for(data)
  assert props[component.standard_component_specs.INPUT_CONFIG_KEY].count(
      '*.parquet') == 1
  stock = _run(stock_zeros_kept, str(tmp_path / 'stock'), props)
  beam_calls.clear()
  ours = _run(component.ArrowParquetExecutor, str(tmp_path / 'ours'), props)
  assert beam_calls == []
  _assert_same(stock, ours)
  example = tf.train.Example.FromString(next(iter(_splits(ours)['train'])))
  assert list(example.features.feature['zeros'].int64_list.value) == [0]
  assert example.features.feature['nothing'].WhichOneof('kind') is None


def test_parquet_list_columns_go_to_stock(tmp_path, beam_calls,
                                          stock_zeros_kept):
  data = tmp_path / 'data'
  data.mkdir()
  pq.write_table(pa.table({'x': list(range(60)),
                           'tags': [[1, 2], [], None] * 20}),
                 data / 'x.parquet')
  props = _props_for(data / 'x.parquet')
  stock = _run(stock_zeros_kept, str(tmp_path / 'stock'), props)
  beam_calls.clear()
  ours = _run(component.ArrowParquetExecutor, str(tmp_path / 'ours'), props)
  assert beam_calls == ['ArrowParquetExecutor']
  _assert_same(stock, ours)


# ---------------------------------------------------------------------------
# TFRecord


def _examples(n, seed):
  rng = random.Random(seed)
  out = []
  for i in range(n):
    example = tf.train.Example()
    features = example.features.feature
    features['id'].int64_list.value.append(seed * 1000 + i)
    if rng.random() < 0.8:
      features['score'].float_list.value.append(rng.uniform(-5, 5))
    features['name'].bytes_list.value.append(
        rng.choice([b'a', b'b', 'ü'.encode()]))
    if rng.random() < 0.3:
      features['tags'].int64_list.value.extend([1, 2, 3][:rng.randint(0, 3)])
    if rng.random() < 0.2:
      features['nothing'].Clear()  # An empty Feature.
    out.append(example.SerializeToString())
  return out


def _write_tfrecord(path, records, compression=None):
  with tf.io.TFRecordWriter(str(path), options=compression) as writer:
    for record in records:
      writer.write(record)


def test_tfrecord_matches_stock_import_example_gen(tmp_path, beam_calls):
  data = tmp_path / 'data'
  data.mkdir()
  _write_tfrecord(data / 'a.tfrecord.gz', _examples(200, 1), 'GZIP')
  _write_tfrecord(data / 'b.tfrecord.gz', _examples(120, 2), 'GZIP')
  props = _props_for(data)
  stock = _run(stock_import.Executor, str(tmp_path / 'stock'), props)
  beam_calls.clear()
  ours = _run(component.TFRecordImportExecutor, str(tmp_path / 'ours'), props)
  assert beam_calls == []
  _assert_same(stock, ours)


def test_uncompressed_tfrecord_and_tfx_shards_match_stock(tmp_path):
  plain = tmp_path / 'plain'
  plain.mkdir()
  _write_tfrecord(plain / 'data.tfrecord', _examples(150, 3))
  props = _props_for(plain / 'data.tfrecord')
  _assert_same(_run(stock_import.Executor, str(tmp_path / 'stock'), props),
               _run(component.TFRecordImportExecutor, str(tmp_path / 'ours'),
                    props))
  # Another pipeline's ExampleGen output, by its folder.
  split = os.path.join(str(tmp_path / 'ours'), 'Split-train')
  found = formats.find(split)
  assert found.format is formats.TFRECORD
  assert found.location.pattern == '*.gz'


def test_gzip_tfrecord_without_gz_suffix_is_named(tmp_path):
  _write_tfrecord(tmp_path / 'data.tfrecord', _examples(10, 4), 'GZIP')
  with pytest.raises(formats.InputError, match='does not end in .gz'):
    formats.TFRECORD.read([str(tmp_path / 'data.tfrecord')])


# ---------------------------------------------------------------------------
# Paths


@pytest.mark.parametrize('path, fmt, root, pattern, name', [
    ('gs://b/data/taxi.csv', 'auto', 'gs://b/data', 'taxi.csv', 'csv'),
    ('gs://b/data/taxi.csv.gz', 'auto', 'gs://b/data', 'taxi.csv.gz', 'csv'),
    ('gs://b/export/', 'parquet', 'gs://b/export', '*.parquet', 'parquet'),
    ('gs://b/export', 'csv', 'gs://b/export', '*.csv', 'csv'),
    ('gs://b/export/part-*.parquet', 'auto', 'gs://b/export',
     'part-*.parquet', 'parquet'),
    ('gs://b/2024-*/part-*.csv', 'auto', 'gs://b', '2024-*/part-*.csv', 'csv'),
    ('gs://b/ex/Split-train/*.gz', 'tfrecord', 'gs://b/ex/Split-train', '*.gz',
     'tfrecord'),
    ('/data/x.tfrecords', 'auto', '/data', 'x.tfrecords', 'tfrecord'),
    ('/data/data_tfrecord-00000-of-00001.gz', 'auto', '/data',
     'data_tfrecord-00000-of-00001.gz', 'tfrecord'),
])
def test_locations_from_the_string_alone(path, fmt, root, pattern, name):
  # What a Kubeflow spec compiles with: nothing is listed or opened.
  chosen = formats.resolve(fmt, path)
  assert chosen.name == name
  assert formats.location(path, chosen) == formats.Location(root, pattern)


@pytest.mark.parametrize('path, fmt, message', [
    ('gs://b/export/', 'auto', 'cannot tell the format'),
    ('/data/x.gz', 'auto', 'cannot tell the format'),
    ('/data/x.csv', 'parquet', 'data.format is parquet, but the name says CSV'),
])
def test_unresolvable_formats_are_named(path, fmt, message):
  with pytest.raises(formats.FormatError, match=message):
    formats.resolve(fmt, path)


def test_folder_listing(tmp_path):
  for name in ('b.parquet', '.hidden.parquet', '_SUCCESS', 'notes.txt'):
    (tmp_path / name).write_bytes(b'')
  found = formats.find(str(tmp_path))
  assert found.format is formats.PARQUET
  # ExampleGen's glob (gfile) matches hidden names too: so does the check.
  assert sorted(os.path.basename(f) for f in found.files) == [
      '.hidden.parquet', 'b.parquet']
  (tmp_path / 'c.csv').write_text('a\n1\n')
  with pytest.raises(formats.FormatError, match='CSV and Parquet'):
    formats.find(str(tmp_path))
  assert formats.find(str(tmp_path), 'csv').location.pattern == '*.csv'
  mixed = tmp_path / 'mixed'
  mixed.mkdir()
  (mixed / 'a.csv').write_text('a\n1\n')
  (mixed / 'b.csv.gz').write_bytes(gzip.compress(b'a\n1\n'))
  with pytest.raises(formats.FormatError, match='one pattern'):
    formats.find(str(mixed))
  with pytest.raises(formats.FormatError, match='no file matches'):
    formats.find(str(tmp_path / '*.tfrecord'))


# ---------------------------------------------------------------------------
# The pre-run check on each format

HEADER = 'fare,trip_miles,payment_type,tips\n'


def _config(path, *overrides):
  return config_lib.load_config(overrides=[
      f'data.path={path}', 'model.batch_size=4',
      'data.features.numeric=[fare, trip_miles]',
      'data.features.log_scale=[fare]',
      'data.features.categorical=[payment_type]', *overrides])


def _rows(n, start=0):
  return ''.join(f'{10 + i % 5},{i % 7},{"Cash" if i % 2 else "Card"},'
                 f'{5 * (i % 2)}\n' for i in range(start, start + n))


def _shards(tmp_path, counts=(20, 15, 25)):
  folder = tmp_path / 'shards'
  folder.mkdir()
  start = 0
  for i, n in enumerate(counts):
    (folder / f'part-{i}.csv').write_text(HEADER + _rows(n, start))
    start += n
  return folder


@pytest.mark.parametrize('path', ['shards', 'shards/part-*.csv'])
def test_folder_and_glob_of_csv_shards_are_checked(tmp_path, path):
  _shards(tmp_path)
  summary = preflight.check_data(_config(tmp_path / path))
  assert summary.rows_total == 60
  assert summary.format == 'csv' and summary.config.data.format == 'csv'
  assert len(summary.files) == 3
  assert summary.location.root == str(tmp_path / 'shards')


def test_a_bad_value_is_named_by_shard_and_row(tmp_path):
  folder = _shards(tmp_path)
  (folder / 'part-1.csv').write_text(HEADER + _rows(4) + '10,far,Cash,1\n')
  with pytest.raises(preflight.InputDataError) as info:
    preflight.check_data(_config(folder))
  assert str(info.value).startswith(
      f"{folder / 'part-1.csv'}: numeric column 'trip_miles' holds 'far' at "
      'data row 5')
  (folder / 'part-1.csv').write_text(HEADER + _rows(4) + '10,1,Cash,lots\n')
  with pytest.raises(preflight.InputDataError) as info:
    preflight.check_data(_config(folder))
  assert str(info.value).startswith(
      f"{folder / 'part-1.csv'}: row 5: cannot read label 'big_tipper'")


def test_shard_headers_that_disagree_are_refused_before_the_run(tmp_path):
  folder = _shards(tmp_path)
  (folder / 'part-2.csv').write_text(
      'fare,trip_miles,tips,payment_type\n' + '1,2,3,Cash\n' * 5)
  with pytest.raises(preflight.InputDataError) as info:
    preflight.check_data(_config(folder))
  assert "part-0.csv has ['fare', 'trip_miles', 'payment_type', 'tips']" in (
      str(info.value))
  assert "part-2.csv has ['fare', 'trip_miles', 'tips', 'payment_type']" in (
      str(info.value))


def test_gzip_csv_is_checked(tmp_path):
  path = tmp_path / 'data.csv.gz'
  path.write_bytes(gzip.compress((HEADER + _rows(40)).encode()))
  assert preflight.check_data(_config(path)).rows_total == 40
  path.write_bytes(gzip.compress((HEADER + _rows(40) + '10,1,Cash\n')
                                 .encode()))
  with pytest.raises(preflight.InputDataError,
                     match='data row 41 has 3 fields, the header has 4'):
    preflight.check_data(_config(path))


def _taxi_like_parquet(path, n=40, **changes):
  columns = {'fare': [10.0 + i % 5 for i in range(n)],
             'trip_miles': [float(1 + i % 7) for i in range(n)],
             'payment_type': ['Cash' if i % 2 else 'Card' for i in range(n)],
             'tips': [5.0 * (i % 2) for i in range(n)]}
  columns.update(changes)
  pq.write_table(pa.table(columns), path)
  return path


def test_parquet_through_the_pre_run_check(tmp_path):
  path = _taxi_like_parquet(tmp_path / 'data.parquet')
  summary = preflight.check_data(_config(path))
  assert summary.rows_total == 40 and summary.format == 'parquet'
  inferred = preflight.check_data(_config(path, 'data.features=auto'))
  assert set(inferred.config.data.features.all) == {
      'fare', 'trip_miles', 'payment_type'}


@pytest.mark.parametrize('changes, overrides, message', [
    ({'tips': ['lots'] * 40}, (),
     "row 1: cannot read label 'big_tipper' for task binary: column 'tips' "
     "holds 'lots', expected a number"),
    ({'big_tipper': [2] * 40}, ('data.label=big_tipper',),
     "column 'big_tipper' holds '2', expected 0 or 1"),
    ({'trip_miles': ['far'] * 40}, (),
     "numeric column 'trip_miles' holds 'far' at row 1"),
    ({'trip_miles': [[1.0, 2.0]] * 40}, (),
     "column 'trip_miles' is a list column"),
])
def test_bad_parquet_is_named(tmp_path, changes, overrides, message):
  path = _taxi_like_parquet(tmp_path / 'data.parquet', **changes)
  with pytest.raises(preflight.InputDataError) as info:
    preflight.check_data(_config(path, *overrides))
  assert message in str(info.value) and str(path) in str(info.value)


def test_zeros_in_parquet_are_values(tmp_path):
  # Stock's Parquet route writes 0 as a missing value (tensorflow/tfx#6407):
  # a 0/1 label would lose its zeros. Ours reads them, a regression target
  # of 0.0 too; an empty string is still no value, and the check says why.
  path = _taxi_like_parquet(tmp_path / 'data.parquet',
                            big_tipper=[0, 1] * 20)
  assert preflight.check_data(_config(path, 'data.label=big_tipper')
                              ).rows_total == 40
  path = _taxi_like_parquet(tmp_path / 'y.parquet',
                            y=[0.0] + [1.5, 2.5] * 19 + [3.5])
  assert preflight.check_data(_config(path, 'task=regression', 'data.label=y')
                              ).rows_total == 40
  path = _taxi_like_parquet(tmp_path / 'text.parquet',
                            big_tipper=[''] + ['no', 'yes'] * 19 + ['no'])
  with pytest.raises(preflight.InputDataError) as info:
    preflight.check_data(_config(
        path, 'data.label={name: big_tipper, positive_value: "yes"}'))
  message = str(info.value)
  assert message.startswith(f"{path}: row 1: cannot read label 'big_tipper'")
  assert 'an empty string is a missing value' in message


def _taxi_like_examples(n=40, bad_tips_at=None):
  records = []
  for i in range(n):
    example = tf.train.Example()
    f = example.features.feature
    f['fare'].float_list.value.append(10.0 + i % 5)
    f['trip_miles'].float_list.value.append(float(1 + i % 7))
    f['payment_type'].bytes_list.value.append(b'Cash' if i % 2 else b'Card')
    if i == bad_tips_at:
      f['tips'].bytes_list.value.append(b'lots')
    else:
      f['tips'].float_list.value.append(5.0 * (i % 2))
    records.append(example.SerializeToString())
  return records


def test_tfrecord_through_the_pre_run_check(tmp_path):
  path = tmp_path / 'data.tfrecord.gz'
  _write_tfrecord(path, _taxi_like_examples(), 'GZIP')
  summary = preflight.check_data(_config(path))
  assert summary.rows_total == 40 and summary.format == 'tfrecord'


def test_bad_tfrecord_label_is_named(tmp_path):
  good, bad = tmp_path / 'a.tfrecord', tmp_path / 'b.tfrecord'
  _write_tfrecord(good, _taxi_like_examples())
  _write_tfrecord(bad, _taxi_like_examples(bad_tips_at=7))
  with pytest.raises(preflight.InputDataError) as info:
    preflight.check_data(_config(tmp_path / '*.tfrecord'))
  assert str(info.value).startswith(
      f"{bad}: record 8: feature 'tips' holds bytes values, earlier records "
      'float')
  # Bytes throughout: a label source that is text.
  text = tf.train.Example.FromString(_taxi_like_examples()[0])
  text.features.feature['tips'].Clear()
  text.features.feature['tips'].bytes_list.value.append(b'lots')
  bad.unlink()
  _write_tfrecord(good, [text.SerializeToString()] * 40)
  with pytest.raises(preflight.InputDataError,
                     match="record 1: cannot read label 'big_tipper'.*'lots'"):
    preflight.check_data(_config(good))


# ---------------------------------------------------------------------------
# data.label.drop_missing: rows without a label are not ingested


def _labelled_rows(n=240):
  """(id, x, y) rows; y is missing in every 7th."""
  rng = random.Random(5)
  return [{'id': i, 'x': rng.uniform(-1, 1),
           'y': None if i % 7 == 3 else rng.choice(['a', 'b', 'c'])}
          for i in range(n)]


def _write_rows(fmt, folder, rows):
  """``rows`` in ``fmt`` as a file of ``folder``; None is a missing value."""
  folder.mkdir()
  if fmt is formats.CSV:
    _write_csv(folder / 'data.csv', [
        {k: '' if v is None else str(v) for k, v in row.items()}
        for row in rows])
  elif fmt is formats.PARQUET:
    pq.write_table(pa.Table.from_pylist(rows), str(folder / 'data.parquet'))
  else:
    records = []
    for row in rows:
      example = tf.train.Example()
      features = example.features.feature
      features['id'].int64_list.value.append(row['id'])
      features['x'].float_list.value.append(row['x'])
      if row['y'] is not None:
        features['y'].bytes_list.value.append(row['y'].encode())
      elif row['id'] % 2:
        features['y'].Clear()  # An empty Feature: no value either.
      records.append(example.SerializeToString())
    _write_tfrecord(folder / 'data.tfrecord.gz', records, 'GZIP')
  return folder


@pytest.mark.parametrize('beam', [False, True], ids=['in_process', 'beam'])
@pytest.mark.parametrize('fmt', [formats.CSV, formats.PARQUET,
                                 formats.TFRECORD], ids=lambda f: f.name)
def test_required_columns_drop_the_rows_without_a_value(
    tmp_path, monkeypatch, beam_calls, fmt, beam):
  # The examples of the file with the unlabelled rows and required_columns
  # are those of the file without them: the same rows in the same splits.
  rows = _labelled_rows()
  kept = [r for r in rows if r['y'] is not None]
  assert 0 < len(kept) < len(rows)
  executor = component.ArrowCsvExecutor if fmt is formats.CSV else (
      component.ArrowParquetExecutor if fmt is formats.PARQUET
      else component.TFRecordImportExecutor)
  expected = _run(executor, str(tmp_path / 'expected'),
                  _props_for(_write_rows(fmt, tmp_path / 'kept', kept)))
  props = _props_for(_write_rows(fmt, tmp_path / 'all', rows))
  props[specs.CUSTOM_CONFIG_KEY] = proto_utils.proto_to_json(
      component.ingest_custom_config(required_columns=['y']))
  beam_calls.clear()
  if beam:
    monkeypatch.setattr(component, 'MAX_IN_MEMORY_BYTES', 1)
  ours = _run(executor, str(tmp_path / 'ours'), props)
  assert beam_calls == ([executor.__name__] if beam else [])
  _assert_same(expected, ours)
  assert sum(sum(c.values()) for c in _splits(ours).values()) == len(kept)
  # The in-process path counts what it dropped; the Beam path does not.
  dropped = ours.mlmd_artifact.custom_properties.get(
      component.ROWS_DROPPED_PROPERTY)
  assert (dropped.int_value if dropped is not None else None) == (
      None if beam else len(rows) - len(kept))


def test_required_columns_reach_every_format_s_example_gen():
  for fmt in (formats.CSV, formats.PARQUET, formats.TFRECORD):
    gen = fmt.example_gen(
        input_base='/data', input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name='all',
                                        pattern=fmt.default_pattern)]),
        output_config=example_gen_pb2.Output(), required_columns=('y',))
    assert component.required_columns_of(gen.exec_properties) == ('y',)


# ---------------------------------------------------------------------------
# data.delimiter: semicolons, tabs


def _write_delimited(path, rows, delimiter):
  import csv  # pylint: disable=g-import-not-at-top
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f, delimiter=delimiter, lineterminator='\n')
    writer.writerow(list(rows[0]))
    writer.writerows([list(r.values()) for r in rows])


@pytest.mark.parametrize('beam', [False, True], ids=['in_process', 'beam'])
@pytest.mark.parametrize('delimiter', [';', '\t'], ids=['semicolon', 'tab'])
def test_another_delimiter_ingests_as_commas_do(tmp_path, monkeypatch,
                                                beam_calls, delimiter, beam):
  # Quoted cells holding commas, quotes, newlines and the delimiter itself.
  rows = [{**r, 'string_col': f'a{delimiter}b'} if i % 9 == 0 else r
          for i, r in enumerate(_tricky_rows())]
  (tmp_path / 'commas').mkdir()
  _write_delimited(tmp_path / 'commas' / 'data.csv', rows, ',')
  expected = _run(component.ArrowCsvExecutor, str(tmp_path / 'expected'),
                  _props_for(tmp_path / 'commas'))
  (tmp_path / 'other').mkdir()
  _write_delimited(tmp_path / 'other' / 'data.csv', rows, delimiter)
  props = _props_for(tmp_path / 'other')
  props[specs.CUSTOM_CONFIG_KEY] = proto_utils.proto_to_json(
      component.ingest_custom_config(delimiter=delimiter))
  beam_calls.clear()
  if beam:
    monkeypatch.setattr(component, 'MAX_IN_MEMORY_BYTES', 1)
  ours = _run(component.ArrowCsvExecutor, str(tmp_path / 'ours'), props)
  assert beam_calls == (['ArrowCsvExecutor'] if beam else [])
  _assert_same(expected, ours)


def test_the_delimiter_from_the_config_and_the_name(tmp_path):
  rows = [{'x': str(i), 'colour': 'red;blue', 'y': str(i % 2)}
          for i in range(40)]
  _write_delimited(tmp_path / 'a.tsv', rows, '\t')
  _write_delimited(tmp_path / 'b.csv', rows, ';')
  # auto: a tab for .tsv; a comma for .csv, where the one-column header
  # names the delimiter to set.
  _, data = formats.read(str(tmp_path / 'a.tsv'))
  assert data.names == ['x', 'colour', 'y']
  with pytest.raises(formats.InputError,
                     match="separated by semicolons; .*: set data.delimiter: "
                     '";"'):
    formats.read(str(tmp_path / 'b.csv'))
  _, data = formats.read(str(tmp_path / 'b.csv'), delimiter=';')
  assert data.cells('colour').to_pylist() == ['red;blue'] * 40
  # The component gets the resolved one.
  for name, delimiter in (('a.tsv', '\t'), ('b.csv', ';')):
    fmt = formats.resolve(formats.AUTO, name).configured(
        ';' if name == 'b.csv' else config_lib.AUTO_DELIMITER, name)
    gen = fmt.example_gen(
        input_base='/data', input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name='all', pattern=name)]),
        output_config=example_gen_pb2.Output())
    assert component.delimiter_of(gen.exec_properties) == delimiter
  with pytest.raises(config_lib.ConfigError, match='data.delimiter'):
    config_lib.load_config(overrides=['data.delimiter=";;"'])


# ---------------------------------------------------------------------------
# The component each format builds


@pytest.mark.parametrize('fmt, stock_class, executor_class', [
    (formats.CSV, CsvExampleGen, component.ArrowCsvExecutor),
    (formats.PARQUET, example_gen_component.FileBasedExampleGen,
     component.ArrowParquetExecutor),
    (formats.TFRECORD, ImportExampleGen, component.TFRecordImportExecutor),
])
def test_each_format_builds_its_stock_example_gen(fmt, stock_class,
                                                  executor_class):
  gen = fmt.example_gen(
      input_base='gs://bucket/data',
      input_config=example_gen_pb2.Input(splits=[
          example_gen_pb2.Input.Split(name='all', pattern=fmt.default_pattern)]),
      output_config=example_gen_pb2.Output())
  assert isinstance(gen, stock_class)
  assert gen.executor_spec.executor_class is executor_class
  assert gen.exec_properties['output_data_format'] == (
      example_gen_pb2.FORMAT_TF_EXAMPLE)


# ---------------------------------------------------------------------------
# End to end, on Parquet


def _taxi_sample_as_parquet(tmp_path):
  """The small run's 600 taxi rows as Parquet, typed as CSV ingestion types
  them (int64, float, string; empty cells null)."""
  csv_path = small_run.write_taxi_sample(tmp_path / 'taxi.csv')
  names = csv_fast.read_header(csv_path)
  table = csv_fast.read_csv(csv_path, names)
  arrays = []
  for column in csv_fast.convert_table(table, csv_path):
    if column.type == csv_fast.ColumnType.STRING:
      arrays.append(column.values.cast(pa.large_string()))
    elif column.type == csv_fast.ColumnType.UNKNOWN:
      arrays.append(pa.nulls(len(column.present), pa.string()))
    else:
      arrays.append(pa.array(
          column.values.astype(np.float64 if column.type
                               == csv_fast.ColumnType.FLOAT else np.int64),
          mask=~column.present))
  path = tmp_path / 'taxi.parquet'
  pq.write_table(pa.table(arrays, names=names), path)
  return path


@pytest.mark.e2e
def test_parquet_runs_end_to_end(tmp_path, stock_zeros_kept):
  from pipeline import cli, local_runner, metadata  # pylint: disable=g-import-not-at-top
  from pipeline.factory import NodeIds  # pylint: disable=g-import-not-at-top
  path = _taxi_sample_as_parquet(tmp_path)
  out = tmp_path / 'out'
  overrides = small_run.settings(path, out)
  code = cli.main(small_run.cli_args('run', overrides) + ['--quiet'])
  assert code == cli.EXIT_OK
  config = config_lib.load_config(overrides=overrides)
  where = local_runner.paths(config)
  runs = metadata.node_runs(metadata.connect_sqlite(where['metadata_path']))
  assert all(run.state == 'COMPLETE' for run in runs.values()), runs
  # The pipeline's examples are stock's Parquet route's (zeros kept), row
  # for row.
  examples_uri = runs[NodeIds.EXAMPLE_GEN].outputs['examples'][0].uri
  stock = _run(stock_zeros_kept, str(tmp_path / 'stock'), _props_for(path))
  expected = _splits(stock)
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  ours = standard_artifacts.Examples()
  ours.uri = examples_uri
  ours.split_names = stock.split_names
  assert _splits(ours) == expected
  assert sum(sum(c.values()) for c in expected.values()) == (
      small_run.SAMPLE_ROWS)


def test_kubeflow_spec_reads_a_gs_glob_of_parquet(tmp_path):
  # Compiled offline: the location comes from the string, nothing is listed.
  from kubeflow import runner  # pylint: disable=g-import-not-at-top
  config = _config('gs://acme/export/part-*.parquet')
  where = runner.resolve_locations(config, pipeline_root='gs://acme/root',
                                   data_root=None, serving_dir=None)
  assert (where['data_root'], where['data_file_pattern']) == (
      'gs://acme/export', 'part-*.parquet')
  job = runner.build_pipeline_job(config, image='tfx-generalize:test',
                                  pipeline_root='gs://acme/root')
  executors = job['pipelineSpec']['deploymentSpec']['executors']
  example_gen = next(e for label, e in executors.items()
                     if label.startswith('example_gen'))
  assert 'components.ingest.component.ArrowParquetExecutor' in str(
      example_gen)
  # A folder needs data.format there: its files cannot be listed.
  with pytest.raises(config_lib.ConfigError, match='cannot tell the format'):
    runner.resolve_locations(_config('gs://acme/export/'), pipeline_root='',
                             data_root=None, serving_dir=None)


def test_every_format_reads_through_fileio_alone(tmp_path, beam_calls):
  # ram:// is a TensorFlow filesystem like gs://: no local path exists, so
  # anything local-only (os.path, glob, open) on the executors' path fails.
  local = tmp_path / 'local'
  local.mkdir()
  _write_csv(local / 'a.csv', _tricky_rows(60))
  _gzip(local / 'a.csv')
  pq.write_table(_parquet_table(60, 5), local / 'b.parquet')
  _write_tfrecord(local / 'c.tfrecord.gz', _examples(60, 6), 'GZIP')
  for name, executor in (('a.csv.gz', component.ArrowCsvExecutor),
                         ('b.parquet', component.ArrowParquetExecutor),
                         ('c.tfrecord.gz', component.TFRecordImportExecutor)):
    remote = f'ram://formats/{name}'
    tf.io.gfile.copy(str(local / name), remote, overwrite=True)
    fmt = formats.resolve(formats.AUTO, remote)
    where = formats.location(remote, fmt)
    assert where.root == 'ram://formats'
    ours = _run(executor, str(tmp_path / f'remote-{name}'),
                _props(where.root, {'all': where.pattern}))
    expected = _run(executor, str(tmp_path / f'local-{name}'),
                    _props_for(local / name))
    assert _splits(ours) == _splits(expected), name
  assert beam_calls == []  # In process, not the stock fallback.
