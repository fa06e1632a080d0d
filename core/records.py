"""A split's TFRecord files, listed, sized and read: one reader for every
component and the report.

ExampleGen and Transform write each split of an artifact as files below
``<artifact uri>/Split-<name>/``, gzipped TFRecords whose names end in
``.gz``.  Here:

* ``split_dir``, ``split_files``, ``files_in`` and ``glob`` list them;
* ``compression`` decides gzip from the names, as tfx_bsl does (all end in
  ``.gz``, or none), and refuses a mix;
* ``dataset`` gives a ``tf.data`` dataset of the serialized records (read
  and CRC-checked in C++), ``iterate`` and ``read_all`` the records as bytes;
* ``size_above`` is the one size bound: the files' total bytes when they
  exceed a bound, which is how callers choose between reading in memory and
  streaming (or Beam).

TensorFlow only: no TFX, Transform or Beam imports, so that ``components/``,
``pipeline/`` and ``bench/`` can all use it.
"""

import itertools
import os
from typing import Iterator, List, Optional, Sequence

import tensorflow as tf

SPLIT_PREFIX = 'Split-'
GZIP_SUFFIX = '.gz'
# Records per read call in ``iterate``: few, large calls (record by record
# in eager mode costs microseconds each).
READ_BATCH = 4096


class MixedCompressionError(ValueError):
  """Some files of a split are gzipped and some are not."""


def split_dir(uri: str, split: str) -> str:
  """The folder of split ``split`` below an artifact's ``uri``."""
  return os.path.join(uri, f'{SPLIT_PREFIX}{split}')


def files_in(directory: str) -> List[str]:
  """The files in ``directory``, sorted by name (empty if there are none)."""
  return glob([os.path.join(directory, '*')])


def split_files(uri: str, split: str) -> List[str]:
  """The files of split ``split`` below an artifact's ``uri``, sorted."""
  return files_in(split_dir(uri, split))


def glob(patterns: Sequence[str], sort: bool = True) -> List[str]:
  """The files matching any of ``patterns`` (gfile: local or remote);
  sorted by name, or with ``sort=False`` in pattern order, each pattern's
  matches as gfile lists them."""
  files = [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]
  return sorted(files) if sort else files


def is_gzipped(files: Sequence[str], name: str = 'The files') -> bool:
  """True if every name ends in ``.gz``, False if none does (or there are
  no files); raises MixedCompressionError, naming ``name``, for a mix.
  tfx_bsl decides a split's compression the same way."""
  gzipped = [f.endswith(GZIP_SUFFIX) for f in files]
  if any(gzipped) and not all(gzipped):
    raise MixedCompressionError(
        f'{name} mixes gzipped and plain files: {list(files)}')
  return bool(gzipped) and gzipped[0]


def compression(files: Sequence[str], name: str = 'The files') -> str:
  """``TFRecordDataset``'s ``compression_type`` for ``files``."""
  return 'GZIP' if is_gzipped(files, name) else ''


def dataset(files: Sequence[str], *, name: str = 'The files',
            limit: Optional[int] = None) -> tf.data.Dataset:
  """The serialized records of ``files`` in file order (the first ``limit``
  only when given), compression decided by ``compression``."""
  records = tf.data.TFRecordDataset(list(files),
                                    compression_type=compression(files, name))
  return records if limit is None else records.take(limit)


def iterate(files: Sequence[str], *, name: str = 'The files',
            limit: Optional[int] = None) -> Iterator[bytes]:
  """The serialized records of ``files`` as bytes, in file order, read in
  batches of ``READ_BATCH``."""
  if not files:  # TFRecordDataset of no files works, but costs a graph.
    return iter(())
  batches = dataset(files, name=name, limit=limit).batch(READ_BATCH)
  return itertools.chain.from_iterable(batches.as_numpy_iterator())


def read_all(files: Sequence[str], *, name: str = 'The files',
             limit: Optional[int] = None) -> List[bytes]:
  """Every serialized record of ``files`` (the first ``limit`` only when
  given), in memory, in file order."""
  return list(iterate(files, name=name, limit=limit))


def total_bytes(files: Sequence[str]) -> int:
  """The files' total size on disk (compressed, as stored)."""
  return sum(tf.io.gfile.stat(f).length for f in files)


def size_above(files: Sequence[str], bound: int) -> Optional[int]:
  """The files' total size in bytes if it exceeds ``bound``, else None:
  what decides between reading in memory and streaming (or Beam)."""
  size = total_bytes(files)
  return size if size > bound else None
