"""The vectorized CSV ExampleGen (components/ingest) against stock CsvExampleGen.

The stock executor and ours run on the same CSVs with the project's split
config; per split, the multisets of examples (deterministically
re-serialized) must be identical, and so must the artifact properties. Also:
type inference and the wire format against tfx_bsl and protobuf directly,
the fallbacks to the stock Beam executor, no partial output on failure, and
errors that name the file.
"""

import collections
import glob
import os
import random

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen.csv_example_gen import executor as stock
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder

from components.ingest import component, csv_fast
from core import config as config_lib

ColumnType = csv_decoder.ColumnType
SPLITS = config_lib.SplitsConfig().as_buckets()  # train/eval/test 14/3/3


def test_column_types_are_tfx_bsl_s():
  # csv_fast defines its own copy so that it imports without Beam.
  assert {t.name: int(t) for t in csv_fast.ColumnType} == {
      t.name: int(t) for t in ColumnType if t != ColumnType.IGNORE}


# data.missing_values as stock CsvExampleGen reads a CSV: only the empty cell
# is missing. Every comparison with stock on a file that may hold 'NA',
# 'null' or 'nan' runs ours with it.
STOCK = ['']


def _props(input_base, splits, output_splits=SPLITS, partition_feature=None,
           missing_values=None):
  """Execution properties as the component passes them; ``missing_values``
  (None: no custom_config, so the executor's default, pandas' list)."""
  output = example_gen_pb2.Output()
  if output_splits:
    output.split_config.CopyFrom(example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
        for name, buckets in output_splits.items()]))
    if partition_feature:
      output.split_config.partition_feature_name = partition_feature
  return {
      specs.INPUT_BASE_KEY: input_base,
      specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Input(
          splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern)
                  for name, pattern in splits.items()])),
      specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output),
      # What the CsvExampleGen component passes.
      specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
      specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
      **({} if missing_values is None else {
          specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(
              component.ingest_custom_config(missing_values))}),
  }


def _run(executor_class, uri, props):
  examples = standard_artifacts.Examples()
  examples.uri = uri
  os.makedirs(uri, exist_ok=True)
  executor_class().Do({}, {specs.EXAMPLES_KEY: [examples]}, dict(props))
  return examples


def _splits(examples):
  """Split name -> multiset of deterministically serialized examples."""
  result = {}
  for name in artifact_utils.decode_split_names(examples.split_names):
    files = sorted(glob.glob(os.path.join(examples.uri, f'Split-{name}',
                                          'data_tfrecord-*.gz')))
    assert files, f'no shards in Split-{name}'
    records = tf.data.TFRecordDataset(files, compression_type='GZIP')
    result[name] = collections.Counter(
        tf.train.Example.FromString(r.numpy()).SerializeToString(
            deterministic=True) for r in records)
  return result


def _properties(examples):
  """What stock sets on its examples; our executor's count of the rows it
  dropped (component.ROWS_DROPPED_PROPERTY) is an addition stock lacks."""
  return (examples.split_names,
          {k: v.string_value
           for k, v in examples.mlmd_artifact.custom_properties.items()
           if k != component.ROWS_DROPPED_PROPERTY})


def _assert_same(stock_examples, ours):
  assert _properties(ours) == _properties(stock_examples)
  expected, actual = _splits(stock_examples), _splits(ours)
  assert set(actual) == set(expected)
  for name in expected:
    assert sum(expected[name].values()) > 0, f'split {name} is empty'
    assert actual[name] == expected[name], f'split {name} differs'


# ---------------------------------------------------------------------------
# A CSV with every case the type inference distinguishes


def _tricky_rows(n=400):
  rng = random.Random(7)
  strings = ['plain', 'with, comma', 'with "quotes"', 'multi\nline', 'ünï',
             ' padded ', 'NA', 'null', '0x1F', 'nan(1)', '1_0', '+5']
  rows = []
  for i in range(n):
    def maybe(value, p_empty=0.1):
      return '' if rng.random() < p_empty else value
    rows.append({
        'int_col': maybe(str(rng.randint(-2**63, 2**63 - 1) if i % 7 == 0
                             else rng.randint(-500, 500))),
        # int in most rows, float in some: FLOAT.
        'int_or_float': maybe(str(rng.randint(0, 99)) if i % 5
                              else f'{rng.random() * 100:.3f}'),
        'float_col': maybe(rng.choice([
            f'{rng.uniform(-1e6, 1e6):.6f}', f'{rng.random():.17g}', '1e39',
            '-0.0', 'nan', 'NaN', '-inf', 'Infinity', '.5', '5.', '1E-46',
            f'{rng.random():.3e}'])),
        'string_col': maybe(rng.choice(strings)),
        'quoted_number': maybe('"1,5"'),  # A comma inside quotes: STRING.
        'empty_col': '',                  # No type: an empty Feature.
        'spaced_int': maybe(f' {rng.randint(0, 9)} '),  # int(' 5 ') is 5.
        'big_int': maybe(str(2**63 + rng.randint(0, 10))),  # STRING.
        'python_only_float': maybe(rng.choice(['+1.5', '1_000.5', '+nan'])),
        'hex_like': maybe(rng.choice(['0x1F', '12'])),  # STRING: not int().
        'nan_paren': maybe(rng.choice(['nan(1)', '1.5'])),  # STRING.
        'long_digits': maybe(rng.choice(['1234567890123456789012', '1.5'])),
        'long_int_in_range': maybe(rng.choice(['9223372036854775807', '3'])),
        'all_present': str(i),
    })
  return rows


def _write_csv(path, rows, newline='\n', encoding='utf-8', last_newline=True):
  columns = list(rows[0])

  def cell(value):
    if value.startswith('"'):
      return value  # Already quoted.
    if any(c in value for c in ',"\n'):
      return '"' + value.replace('"', '""') + '"'
    return value

  lines = [','.join(columns)] + [','.join(cell(row[c]) for c in columns)
                                 for row in rows]
  lines.insert(len(lines) // 2, '')  # A blank line: skipped by both.
  with open(path, 'w', encoding=encoding, newline='') as f:
    f.write(newline.join(lines) + (newline if last_newline else ''))


@pytest.fixture(scope='module')
def tricky(tmp_path_factory):
  """Two CSV files (one split pattern) and stock's output for them."""
  root = tmp_path_factory.mktemp('tricky')
  data = root / 'data'
  data.mkdir()
  rows = _tricky_rows()
  _write_csv(data / 'part-0.csv', rows[:250])
  _write_csv(data / 'part-1.csv', rows[250:])
  props = _props(str(data), {'all': 'part-*.csv'}, missing_values=STOCK)
  return root, props, _run(stock.Executor, str(root / 'stock'), props)


def test_same_examples_in_same_splits_as_stock(tricky):
  root, props, stock_examples = tricky
  ours = _run(component.ArrowCsvExecutor, str(root / 'ours'), props)
  _assert_same(stock_examples, ours)
  # No staging directory left behind.
  assert sorted(os.listdir(ours.uri)) == ['Split-eval', 'Split-test',
                                          'Split-train']


def test_the_fixture_meets_every_stock_type(tricky):
  """What stock made of each column, so the equality above covers them all
  (an empty cell keeps its column's list type; no type is an empty
  Feature)."""
  _, _, stock_examples = tricky
  example = tf.train.Example.FromString(next(iter(
      _splits(stock_examples)['train'])))
  assert {name: f.WhichOneof('kind')
          for name, f in example.features.feature.items()} == {
              'int_col': 'int64_list',
              'int_or_float': 'float_list',
              'float_col': 'float_list',
              'string_col': 'bytes_list',
              'quoted_number': 'bytes_list',
              'empty_col': None,
              'spaced_int': 'int64_list',
              'big_int': 'bytes_list',
              'python_only_float': 'float_list',
              'hex_like': 'bytes_list',
              'nan_paren': 'bytes_list',
              'long_digits': 'bytes_list',
              'long_int_in_range': 'int64_list',
              'all_present': 'int64_list',
          }


def test_input_splits_without_hashing_match_stock(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  rows = _tricky_rows(120)
  _write_csv(data / 'train.csv', rows[:80])
  # Windows line ends, no newline at the end.
  _write_csv(data / 'eval.csv', rows[80:], newline='\r\n',
             last_newline=False)
  props = _props(str(data), {'train': 'train.csv', 'eval': 'eval.csv'},
                 output_splits=None, missing_values=STOCK)
  _assert_same(_run(stock.Executor, str(tmp_path / 'stock'), props),
               _run(component.ArrowCsvExecutor, str(tmp_path / 'ours'),
                    props))


def test_a_header_that_begins_as_parquet_does_is_still_a_header(tmp_path):
  path = tmp_path / 'par.csv'
  path.write_text('PAR1,PAR2,y\n1,2,0\n')
  assert csv_fast.read_header(str(path)) == ['PAR1', 'PAR2', 'y']


def test_header_as_users_write_it(tmp_path):
  # Stock names the first column '\ufeff<name>' after a byte-order mark and
  # keeps the spaces in ' b'; ours reads the names a user meant, so these
  # files give the examples of the plain file.
  rows = _tricky_rows(60)
  plain, odd = tmp_path / 'plain', tmp_path / 'odd'
  plain.mkdir()
  odd.mkdir()
  _write_csv(plain / 'data.csv', rows)
  _write_csv(odd / 'data.csv', rows, newline='\r\n', encoding='utf-8-sig')
  text = (odd / 'data.csv').read_bytes().decode('utf-8-sig')
  header, rest = text.split('\r\n', 1)
  names = header.split(',')
  spaced = ' , '.join(f'"{n}"' if i == 0 else n for i, n in enumerate(names))
  (odd / 'data.csv').write_text('\ufeff' + spaced + '\r\n' + rest,
                                encoding='utf-8', newline='')
  assert csv_fast.read_header(str(odd / 'data.csv')) == names
  props = lambda d: _props(str(d), {'single_split': 'data.csv'})
  expected = _splits(_run(component.ArrowCsvExecutor, str(tmp_path / 'a'),
                          props(plain)))
  assert sum(sum(c.values()) for c in expected.values()) == 60
  assert _splits(_run(component.ArrowCsvExecutor, str(tmp_path / 'b'),
                      props(odd))) == expected


@pytest.mark.slow  # Stock takes about 6 s on the 15,002 rows.
def test_taxi_sample_gives_identical_splits(tmp_path):
  taxi = config_lib.taxi_sample_path()  # 15,002 rows, inside the tfx wheel.
  props = _props(os.path.dirname(taxi), {'all': os.path.basename(taxi)},
                 missing_values=STOCK)
  _assert_same(_run(stock.Executor, str(tmp_path / 'stock'), props),
               _run(component.ArrowCsvExecutor, str(tmp_path / 'ours'),
                    props))


# ---------------------------------------------------------------------------
# Units, against tfx_bsl and protobuf directly

TRICKY_CELLS = [
    '0', '-0', '007', '+5', ' 5', '5 ', '1_000', '0x1F', '0X1f', '0b1', '1e3',
    '1.', '.5', '-.5e2', 'nan', 'NaN', '-nan', '+nan', 'inf', '-Infinity',
    'nan(1)', 'in', '1e', '.', '-', 'e5', '1,5', 'abc', 'ünï', '١',
    '9223372036854775807', '9223372036854775808', '-9223372036854775808',
    '-9223372036854775809', '12345678901234567890123', '1.5f', '1d5',
    '1e400', '4.9e-325', '0.1', '3.4028236e38',
]


@pytest.mark.parametrize('cell', TRICKY_CELLS)
def test_a_cell_gets_tfx_bsl_type_and_python_value(cell):
  # Next to integers, the cell's type decides the column's (a max).
  column = pa.array([cell, '1', None] * 1000)
  converted = csv_fast.convert_column('c', column)
  expected = max(ColumnType.INT,
                 csv_decoder._InferValueType(cell.encode()))  # pylint: disable=protected-access
  assert converted.type == expected
  assert converted.present.tolist() == [True, True, False] * 1000
  if expected == ColumnType.INT:
    assert converted.values[0] == int(cell.encode())
  elif expected == ColumnType.FLOAT:
    with np.errstate(over='ignore'):  # Beyond float32: inf, as protobuf.
      expected_value = np.float32(float(cell.encode()))
    assert (converted.values[0].tobytes() == expected_value.tobytes()
            or (np.isnan(converted.values[0]) and np.isnan(expected_value)))
  else:
    assert converted.values[0].as_py() == cell.encode()


def test_encoding_is_protobuf_deterministic_serialization():
  rng = random.Random(3)
  n = 500
  ints = [rng.choice([0, 1, -1, 127, 128, 16384, 2**63 - 1, -2**63,
                      rng.randint(-2**40, 2**40)]) for _ in range(n)]
  floats = [rng.choice([0.1, -0.0, float('nan'), 1e39, 1e-46,
                        rng.random() * 1e10]) for _ in range(n)]
  strings = [''.join(rng.choice('aé€😀, "') for _ in range(
      rng.choice([0, 1, 127, 128, 20000]))).encode() for _ in range(n)]
  present = [[rng.random() < 0.8 for _ in range(n)] for _ in range(3)]
  long_key = 'k' * 200  # Key length needs a two-byte varint.
  columns = [
      csv_fast._numeric(long_key, ColumnType.INT, np.array(ints),  # pylint: disable=protected-access
                        np.array(present[0])),
      csv_fast._numeric('f', ColumnType.FLOAT, np.array(floats),  # pylint: disable=protected-access
                        np.array(present[1])),
      csv_fast.Column('é', ColumnType.STRING, np.array(present[2]),
                      pa.array([s if p else None
                                for s, p in zip(strings, present[2])],
                               pa.large_binary())),
      csv_fast.Column('a_none', ColumnType.UNKNOWN, np.zeros(n, bool)),
  ]
  encoded = [csv_fast.encode_column(c) for c in columns]
  rows = np.array([rng.randrange(n) for _ in range(n)])
  actual = csv_fast.encode_examples(encoded, rows).to_pylist()
  for i, row in enumerate(rows):
    feature = {
        long_key: tf.train.Feature(int64_list=tf.train.Int64List(
            value=[ints[row]] if present[0][row] else [])),
        'f': tf.train.Feature(float_list=tf.train.FloatList(
            value=[floats[row]] if present[1][row] else [])),
        'é': tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[strings[row]] if present[2][row] else [])),
        'a_none': tf.train.Feature(),
    }
    expected = tf.train.Example(features=tf.train.Features(
        feature=feature)).SerializeToString(deterministic=True)
    assert actual[i] == expected, f'row {row}'


def test_buckets_are_stocks_partition():
  records = [os.urandom(random.Random(i).randrange(1, 300)) for i in range(300)]
  array = pa.array(records, pa.large_binary())
  buckets, _ = csv_fast.hashes_and_crcs(array, 20)
  splits = csv_fast.split_indices(buckets, [14, 3, 3])
  expected = [base_example_gen_executor._PartitionFn(  # pylint: disable=protected-access
      r, 3, [14, 17, 20], example_gen_pb2.SplitConfig()) for r in records]
  assert splits.tolist() == expected


# ---------------------------------------------------------------------------
# Fallbacks, failures and errors


def _small_csv(tmp_path, rows=60):
  data = tmp_path / 'data'
  data.mkdir(exist_ok=True)
  _write_csv(data / 'data.csv', _tricky_rows(rows))
  return data


def test_large_input_falls_back_to_the_beam_executor(tmp_path, monkeypatch,
                                                     beam_calls):
  data = _small_csv(tmp_path)
  props = _props(str(data), {'all': 'data.csv'})
  ours = _run(component.ArrowCsvExecutor, str(tmp_path / 'fast'), props)
  assert beam_calls == []  # Below the threshold: no Beam.

  size = os.path.getsize(data / 'data.csv')
  monkeypatch.setattr(component, 'MAX_IN_MEMORY_BYTES', size - 1)
  fallback = _run(component.ArrowCsvExecutor, str(tmp_path / 'beam'), props)
  assert beam_calls == ['ArrowCsvExecutor']
  _assert_same(fallback, ours)


@pytest.mark.parametrize('change, reason', [
    (lambda p: p.update({specs.OUTPUT_DATA_FORMAT_KEY:
                         example_gen_pb2.FORMAT_TF_SEQUENCE_EXAMPLE}),
     'payload format'),
    (lambda p: p.update({specs.OUTPUT_FILE_FORMAT_KEY: 99}), 'file format'),
    (lambda p: p.update(_props(p[specs.INPUT_BASE_KEY], {'all': 'data.csv'},
                               partition_feature='string_col')),
     'partition_feature_name'),
])
def test_unsupported_configs_go_to_beam(tmp_path, change, reason):
  data = _small_csv(tmp_path)
  props = _props(str(data), {'all': 'data.csv'})
  change(props)
  output_config = example_gen_pb2.Output()
  proto_utils.json_to_proto(props[specs.OUTPUT_CONFIG_KEY], output_config)
  found = component._beam_reason(  # pylint: disable=protected-access
      {'all': [str(data / 'data.csv')]}, output_config, props)
  assert reason in found


def test_duplicate_column_names_go_to_beam(tmp_path):
  (tmp_path / 'd.csv').write_text('a,b,a\n1,2,3\n')
  found = component._beam_reason(  # pylint: disable=protected-access
      {'all': [str(tmp_path / 'd.csv')]}, example_gen_pb2.Output(),
      _props(str(tmp_path), {'all': 'd.csv'}))
  assert 'duplicate column names' in found and 'd.csv' in found


def test_failure_leaves_no_partial_output(tmp_path, monkeypatch):
  data = _small_csv(tmp_path, rows=300)
  monkeypatch.setattr(component, 'BATCH_ROWS', 50)  # Several batches.
  frames = csv_fast.tfrecord_frames
  calls = []

  def fail_later(*args):
    calls.append(1)
    if len(calls) == 5:
      raise OSError('disk full')
    return frames(*args)

  monkeypatch.setattr(csv_fast, 'tfrecord_frames', fail_later)
  uri = tmp_path / 'out'
  with pytest.raises(OSError, match='disk full'):
    _run(component.ArrowCsvExecutor, str(uri),
         _props(str(data), {'all': 'data.csv'}))
  assert os.listdir(uri) == []  # Neither splits nor the staging directory.


def test_bad_csv_error_names_the_file(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'bad.csv').write_text('a,b,c\n1,2,3\n4,5\n')
  with pytest.raises(csv_fast.CsvInputError, match=r'bad\.csv.*3 columns'):
    _run(component.ArrowCsvExecutor, str(tmp_path / 'out'),
         _props(str(data), {'all': 'bad.csv'}))
  with pytest.raises(RuntimeError, match='does not match any files'):
    _run(component.ArrowCsvExecutor, str(tmp_path / 'out2'),
         _props(str(data), {'all': 'missing-*.csv'}))


def test_component_is_csv_example_gen_with_our_executor():
  gen = component.ArrowCsvExampleGen(
      input_base='/data',
      input_config=example_gen_pb2.Input(splits=[
          example_gen_pb2.Input.Split(name='all', pattern='x.csv')]))
  from tfx.components.example_gen.csv_example_gen.component import CsvExampleGen  # pylint: disable=g-import-not-at-top
  assert isinstance(gen, CsvExampleGen)
  assert gen.DRIVER_CLASS is CsvExampleGen.DRIVER_CLASS
  assert isinstance(gen.executor_spec, executor_spec.BeamExecutorSpec)
  assert gen.executor_spec.executor_class is component.ArrowCsvExecutor
  # Kubeflow names the executor by this path in the compiled spec.
  assert (component.ArrowCsvExecutor.__module__ + '.'
          + component.ArrowCsvExecutor.__qualname__
          == 'components.ingest.component.ArrowCsvExecutor')


def test_remote_files_are_read_through_fileio():
  # ram:// is a TensorFlow filesystem like gs://: no local path, fileio only.
  path = 'ram://ingest/data.csv'
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write('\ufeffa, b\r\n1,"x, y"\r\n2,z\r\n')
  names = csv_fast.read_header(path, component._open)  # pylint: disable=protected-access
  assert names == ['a', 'b']
  table = csv_fast.read_csv(path, names, open_fn=component._open)  # pylint: disable=protected-access
  assert table.to_pydict() == {'a': ['1', '2'], 'b': ['x, y', 'z']}


def test_beam_fallback_reads_the_header_as_the_fast_path(tmp_path, monkeypatch,
                                                         beam_calls):
  # A byte-order mark and spaces around names: stock's Beam path would name
  # the columns '\ufeffa' and ' b'; the fallback reads them as 'a' and 'b'.
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'data.csv').write_text(
      '\ufeffa , b\n' + ''.join(f'{i},{"xy"[i % 2]}\n' for i in range(60)),
      encoding='utf-8')
  props = _props(str(data), {'all': 'data.csv'})
  fast = _run(component.ArrowCsvExecutor, str(tmp_path / 'fast'), props)
  monkeypatch.setattr(component, 'MAX_IN_MEMORY_BYTES', 1)
  beam = _run(component.ArrowCsvExecutor, str(tmp_path / 'beam'), props)
  assert beam_calls == ['ArrowCsvExecutor']
  _assert_same(fast, beam)
  example = tf.train.Example.FromString(next(iter(_splits(beam)['train'])))
  assert set(example.features.feature) == {'a', 'b'}


# ---------------------------------------------------------------------------
# Missing-value tokens (data.missing_values)


def _token_rows(n=300):
  """Penguins-like rows: numbers, categories and missing-value tokens."""
  rng = random.Random(11)
  tokens = list(config_lib.PANDAS_MISSING_VALUES)
  rows = []
  for i in range(n):
    def maybe(value, p=0.1):
      return rng.choice(tokens) if rng.random() < p else value
    rows.append({
        'species': rng.choice(['Adelie', 'Gentoo', 'Chinstrap']),
        'bill_length_mm': maybe(f'{rng.uniform(30, 60):.1f}'),
        'body_mass_g': maybe(str(rng.randint(2700, 6300))),
        'sex': maybe(rng.choice(['male', 'female'])),
        'quoted': maybe(rng.choice(['"NA"', '"null"', '"1"', '2'])),
        # Not tokens: spaces are kept, as stock keeps them (' ' is no empty
        # cell either), and case matters ('na', 'Null').
        'near_misses': rng.choice([' NA', 'NA ', 'na', 'Null', 'x']),
        'all_missing': rng.choice(['NA', '', 'null']),
        'year': str(2007 + i % 3),
    })
  return rows


def _emptied(rows):
  tokens = set(config_lib.PANDAS_MISSING_VALUES)
  # A quoted token ('"NA"') is one too, as a quoted empty cell is missing.
  return [{k: '' if v.strip('"') in tokens else v for k, v in row.items()}
          for row in rows]


def test_missing_value_tokens_give_stock_examples_of_the_emptied_file(
    tmp_path, monkeypatch, beam_calls):
  # With the default list, a file with 'NA' (and the other tokens) gives
  # the examples stock CsvExampleGen gives for the same file with those
  # cells empty: numeric columns stay numeric, 'NA' is no category.
  rows = _token_rows()
  tokens, empty = tmp_path / 'tokens', tmp_path / 'empty'
  tokens.mkdir()
  empty.mkdir()
  _write_csv(tokens / 'data.csv', rows)
  _write_csv(empty / 'data.csv', _emptied(rows))
  stock_examples = _run(stock.Executor, str(tmp_path / 'stock'),
                        _props(str(empty), {'all': 'data.csv'}))
  beam_calls.clear()  # Stock's own Do.
  example = tf.train.Example.FromString(next(iter(
      _splits(stock_examples)['train'])))
  kinds = {n: f.WhichOneof('kind')
           for n, f in example.features.feature.items()}
  assert kinds['bill_length_mm'] == 'float_list'
  assert kinds['body_mass_g'] == kinds['quoted'] == 'int64_list'
  assert kinds['near_misses'] == 'bytes_list'
  assert kinds['all_missing'] is None  # No value at all: no type.
  props = _props(str(tokens), {'all': 'data.csv'})  # The default list.
  ours = _run(component.ArrowCsvExecutor, str(tmp_path / 'ours'), props)
  assert beam_calls == []
  _assert_same(stock_examples, ours)
  # The Beam fallback applies the tokens too.
  monkeypatch.setattr(component, 'MAX_IN_MEMORY_BYTES', 1)
  beam = _run(component.ArrowCsvExecutor, str(tmp_path / 'beam'), props)
  assert beam_calls == ['ArrowCsvExecutor']
  _assert_same(stock_examples, beam)
  # Listed explicitly, the same list gives the same examples.
  monkeypatch.setattr(component, 'MAX_IN_MEMORY_BYTES', 2 * 1024 ** 3)
  _assert_same(stock_examples, _run(
      component.ArrowCsvExecutor, str(tmp_path / 'listed'),
      _props(str(tokens), {'all': 'data.csv'},
             missing_values=config_lib.PANDAS_MISSING_VALUES)))


def _read(tmp_path, text, missing_values=None):
  path = tmp_path / 'd.csv'
  path.write_text(text)
  names = csv_fast.read_header(str(path))
  table = csv_fast.read_csv(str(path), names, missing_values=missing_values)
  return table, {c.name: c for c in csv_fast.convert_table(table, str(path))}


def test_tokens_are_missing_in_numeric_and_string_columns(tmp_path):
  text = ('n,f,s,q\n1,1.5,male,"NA"\nNA,N/A,NA,"x"\nnull,nan,None,\n'
          '3,-NaN,female,"null"\n')
  table, columns = _read(tmp_path, text)
  assert table.to_pydict() == {
      'n': ['1', None, None, '3'], 'f': ['1.5', None, None, None],
      's': ['male', None, None, 'female'], 'q': [None, 'x', None, None]}
  assert columns['n'].type == ColumnType.INT
  assert columns['n'].present.tolist() == [True, False, False, True]
  assert columns['n'].values[columns['n'].present].tolist() == [1, 3]
  assert columns['f'].type == ColumnType.FLOAT
  assert columns['s'].type == ColumnType.STRING
  assert columns['s'].present.tolist() == [True, False, False, True]


def test_stock_list_keeps_tokens_as_values(tmp_path):
  text = 'n,s\n1,male\nNA,NA\n,\n'
  table, columns = _read(tmp_path, text, missing_values=STOCK)
  assert table.to_pydict() == {'n': ['1', 'NA', None], 's': ['male', 'NA',
                                                             None]}
  assert columns['n'].type == ColumnType.STRING  # As stock types it.
  assert columns['s'].values.to_pylist() == [b'male', b'NA', None]


def test_a_custom_list(tmp_path):
  text = 'n,s\n1,a\n-999,?\nNA,b\n,c\n'
  table, columns = _read(tmp_path, text, missing_values=['-999', '?'])
  # The empty cell is always missing; 'NA' is not in this list.
  assert table.to_pydict() == {'n': ['1', None, 'NA', None],
                               's': ['a', None, 'b', 'c']}
  assert columns['n'].type == ColumnType.STRING
  _, columns = _read(tmp_path, 'n\n1\n-999\n\n2\n', missing_values=['-999'])
  assert columns['n'].type == ColumnType.INT
  assert columns['n'].present.tolist() == [True, False, True]


def test_component_carries_missing_values_to_the_executor():
  def carried(**kwargs):
    gen = component.ArrowCsvExampleGen(
        input_base='/data', input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name='all', pattern='x.csv')]),
        **kwargs)
    # The spec holds it as JSON, as a launcher (local or Kubeflow) passes it.
    assert isinstance(gen.exec_properties[specs.CUSTOM_CONFIG_KEY], str)
    carried = component.missing_values_of(gen.exec_properties)
    assert carried == component.missing_values_of({
        specs.CUSTOM_CONFIG_KEY: component.ingest_custom_config(
            kwargs.get('missing_values'))})  # Or the proto itself.
    return carried

  assert carried() == config_lib.PANDAS_MISSING_VALUES
  assert carried(missing_values=STOCK) == ('',)
  assert carried(missing_values=['NA', '?']) == ('', 'NA', '?')
  assert component.missing_values_of({}) == config_lib.PANDAS_MISSING_VALUES
