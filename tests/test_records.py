"""core/records: listing, compression, reading and the size bound of a
split's TFRecord files."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from core import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, payloads, gzip):
  options = tf.io.TFRecordOptions(compression_type='GZIP' if gzip else '')
  with tf.io.TFRecordWriter(str(path), options) as writer:
    for payload in payloads:
      writer.write(payload)
  return str(path)


@pytest.fixture
def split(tmp_path):
  """An artifact with a gzipped split of two shards (written out of name
  order) and a plain one."""
  uri = tmp_path / 'examples'
  train = uri / 'Split-train'
  plain = uri / 'Split-plain'
  train.mkdir(parents=True)
  plain.mkdir()
  _write(train / 'data-00001-of-00002.gz', [b'c', b'd', b'e'], gzip=True)
  _write(train / 'data-00000-of-00002.gz', [b'a', b'b'], gzip=True)
  _write(plain / 'data-00000-of-00001', [b'x', b'y'], gzip=False)
  return str(uri)


def test_split_files_sorted_below_the_split_dir(split):
  assert records.split_dir(split, 'train') == os.path.join(split,
                                                           'Split-train')
  assert [os.path.basename(f) for f in records.split_files(split, 'train')
          ] == ['data-00000-of-00002.gz', 'data-00001-of-00002.gz']
  assert records.split_files(split, 'missing') == []
  assert records.files_in(records.split_dir(split, 'train')) == (
      records.split_files(split, 'train'))


def test_glob_keeps_pattern_order_unsorted(split):
  patterns = [os.path.join(split, 'Split-train', '*1-of-*'),
              os.path.join(split, 'Split-train', '*0-of-*')]
  assert [os.path.basename(f) for f in records.glob(patterns, sort=False)
          ] == ['data-00001-of-00002.gz', 'data-00000-of-00002.gz']
  assert records.glob(patterns) == records.split_files(split, 'train')


def test_reads_gzipped_and_plain_in_file_order(split):
  gz = records.split_files(split, 'train')
  assert records.compression(gz) == 'GZIP'
  assert records.read_all(gz) == [b'a', b'b', b'c', b'd', b'e']
  plain = records.split_files(split, 'plain')
  assert records.compression(plain) == ''
  assert records.read_all(plain) == [b'x', b'y']
  assert [r.numpy() for r in records.dataset(plain)] == [b'x', b'y']
  assert records.read_all([]) == []


def test_first_n(split, monkeypatch):
  gz = records.split_files(split, 'train')
  assert records.read_all(gz, limit=3) == [b'a', b'b', b'c']
  assert records.read_all(gz, limit=0) == []
  assert records.read_all(gz, limit=50) == [b'a', b'b', b'c', b'd', b'e']
  assert [r.numpy() for r in records.dataset(gz, limit=1)] == [b'a']
  monkeypatch.setattr(records, 'READ_BATCH', 2)  # Across batches and files.
  assert list(records.iterate(gz, limit=4)) == [b'a', b'b', b'c', b'd']


def test_refuses_a_mix_of_gzipped_and_plain(split):
  mixed = (records.split_files(split, 'train') +
           records.split_files(split, 'plain'))
  with pytest.raises(records.MixedCompressionError,
                     match=r'^Split x mixes gzipped and plain files: \['):
    records.dataset(mixed, name='Split x')
  with pytest.raises(ValueError, match='mixes gzipped and plain'):
    records.read_all(mixed)
  assert records.is_gzipped([]) is False


def test_size_bound(split):
  files = records.split_files(split, 'train')
  size = sum(os.path.getsize(f) for f in files)
  assert records.total_bytes(files) == size
  assert records.size_above(files, size) is None  # At the bound: within.
  assert records.size_above(files, size - 1) == size
  assert records.size_above([], 0) is None


def test_imports_no_tfx_transform_or_beam():
  # A fresh interpreter: this test session has imported them already.
  code = ('import sys; import core.records; '
          'bad = [m for m in ("tfx", "tensorflow_transform", "apache_beam") '
          'if m in sys.modules]; print(bad); sys.exit(bool(bad))')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
