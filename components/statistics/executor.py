"""StatisticsGen executor that computes the stock statistics without Beam.

It writes the artifact TFX 1.16's StatisticsGen writes, per split
``Split-<name>/FeatureStats.pb`` (a binary DatasetFeatureStatisticsList) and
the same artifact properties (split names, span, dashboard link,
``sample_rate_by_split``), so SchemaGen, ExampleValidator and the run report
read it unchanged.  The StatsOptions are built as the stock executor builds
them (``stats_options_json``, the optional schema input, the read schema for
``experimental_filter_read_paths``).

It runs the stock executor (``super().Do``, Beam) instead when

* the input files of the splits exceed ``Executor.MAX_IN_MEMORY_BYTES``
  (1 GiB of gzipped TFRecords, about 20 million flights rows): beyond that
  one machine is the limit and a distributed Beam runner can do better;
* the examples are not gzipped TFRecords of tf.Example (Parquet,
  SequenceExample, custom split patterns over other formats);
* the options need Beam (``compute.unsupported_reason``: slicing, sampling,
  example weights, lift or other transform generators), or sharded output is
  requested.
"""

import os
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow_data_validation as tfdv
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.components.statistics_gen import executor as stock_executor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as keys
from tfx.utils import io_utils
from tfx.utils import json_utils
from tfx.utils import stats_utils

from components import beam_fallback
from components.statistics import compute
from core import records

# Examples decoded per record batch: large enough that per-batch overhead in
# the generators is small, small enough to keep each batch a few MB.
DECODE_BATCH_ROWS = 8192


class _Plan(NamedTuple):
  """What the stock executor would compute."""
  examples: types.Artifact
  split_names: List[str]
  stats_options: tfdv.StatsOptions
  sample_rate_by_split: Dict[str, float]
  read_schema: Optional[schema_pb2.Schema]  # The TFXIO's decoding schema.
  files: Dict[str, List[str]]  # Split -> its files, sorted.


class Executor(beam_fallback.BeamOnFallback, stock_executor.Executor):
  """The stock StatisticsGen executor, without Beam for inputs that fit."""

  # Compressed input bytes (all splits) above which Beam does the work.
  MAX_IN_MEMORY_BYTES = 1 << 30
  # Upper bound on worker processes; also bounded by the usable cores and by
  # an explicit --direct_num_workers=N in the Beam arguments.
  MAX_WORKERS = 8

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    plan, reason = self._plan(input_dict, exec_properties)
    if plan is None:
      logging.info('StatisticsGen: the Beam path (%s).', reason)
      self.init_beam()
      return super().Do(input_dict, output_dict, exec_properties)
    self._log_startup(input_dict, output_dict, exec_properties)
    workers = self._workers()
    logging.info('StatisticsGen: in memory, %d worker process(es).', workers)

    statistics = artifact_utils.get_single_instance(
        output_dict[keys.STATISTICS_KEY])
    _set_output_properties(statistics, plan)
    for split in plan.split_names:
      logging.info('Generating statistics for split %s.', split)
      result = compute.generate_statistics(
          _read_serialized(plan.files[split], split), plan.stats_options,
          decoder_schema=plan.read_schema, workers=workers)
      output_uri = artifact_utils.get_split_uri([statistics], split)
      io_utils.write_bytes_file(
          os.path.join(output_uri, stock_executor.DEFAULT_FILE_NAME),
          result.SerializeToString())
      logging.info('Statistics for split %s written to %s.', split, output_uri)

  def _plan(self, input_dict, exec_properties
            ) -> Tuple[Optional[_Plan], Optional[str]]:
    """What the stock executor would compute, or (None, why Beam is used).

    Mirrors the set-up part of the stock ``Do`` (TFX 1.16) and raises the
    same errors for invalid properties.
    """
    exclude_splits = json_utils.loads(
        exec_properties.get(keys.EXCLUDE_SPLITS_KEY, 'null')) or []
    if not isinstance(exclude_splits, list):
      raise ValueError('exclude_splits in execution properties needs to be a '
                       'list. Got %s instead.' % type(exclude_splits))
    sample_rate_by_split = json_utils.loads(
        exec_properties.get(keys.SAMPLE_RATE_BY_SPLIT_KEY, 'null')) or {}
    examples = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
    if examples.has_custom_property(
        examples_utils.CUSTOM_SPLIT_PATTERN_PROPERTY_NAME):
      return None, 'custom split patterns'
    splits = artifact_utils.decode_split_names(examples.split_names)
    split_names = [s for s in splits if s not in exclude_splits]
    if not split_names:
      raise ValueError('No splits for examples artifact: %s' % examples)

    stats_options = tfdv.StatsOptions()
    if exec_properties.get(keys.STATS_OPTIONS_JSON_KEY):
      stats_options = tfdv.StatsOptions.from_json(
          exec_properties[keys.STATS_OPTIONS_JSON_KEY])
    if input_dict.get(keys.SCHEMA_KEY):
      if stats_options.schema:
        raise ValueError('A schema was provided as an input and the '
                         'stats_options exec_property also contains a schema '
                         'value. At most one of these may be set.')
      stats_options.schema = io_utils.SchemaReader().read(
          io_utils.get_only_uri_in_dir(
              artifact_utils.get_single_uri(input_dict[keys.SCHEMA_KEY])))

    if exec_properties.get(keys.SHARDED_STATS_OUTPUT_KEY, False):
      return None, 'sharded output'
    if any(sample_rate_by_split.get(s, 1.0) < 1.0 for s in split_names):
      return None, 'sampling by split'
    reason = compute.unsupported_reason(stats_options)
    if reason:
      return None, reason
    read_schema, reason = _read_schema(stats_options)
    if reason:
      return None, reason
    if (examples_utils.get_payload_format(examples) !=
        example_gen_pb2.FORMAT_TF_EXAMPLE or
        examples_utils.get_file_format(examples) != 'tfrecords_gzip'):
      return None, 'not gzipped tf.Example TFRecords'
    files = {s: _split_files(examples, s) for s in split_names}
    size = records.size_above([f for paths in files.values() for f in paths],
                              self.MAX_IN_MEMORY_BYTES)
    if size is not None:
      return None, (f'{size:,} input bytes exceed MAX_IN_MEMORY_BYTES='
                    f'{self.MAX_IN_MEMORY_BYTES:,}')
    return _Plan(examples, split_names, stats_options, sample_rate_by_split,
                 read_schema, files), None

  def _workers(self) -> int:
    workers = min(self.MAX_WORKERS, len(os.sched_getaffinity(0)))
    args = (getattr(self._beam_context, 'beam_pipeline_args', None) or [])
    for arg in args:
      if arg.startswith('--direct_num_workers='):
        requested = int(arg.split('=', 1)[1])
        if requested > 0:  # Beam's 0 means one per core.
          workers = min(workers, requested)
    return max(1, workers)


def _read_schema(stats_options: tfdv.StatsOptions
                 ) -> Tuple[Optional[schema_pb2.Schema], Optional[str]]:
  """The schema the stock executor's TFXIO decodes with, as it chooses it."""
  if not stats_options.experimental_filter_read_paths:
    return None, None
  if stats_options.feature_allowlist:
    return None, 'experimental_filter_read_paths with an allowlist'
  if stats_options.schema is None:
    raise ValueError('experimental_filter_read_paths requires allowlist '
                     'features or schema.')
  return stats_options.schema, None


def _set_output_properties(statistics: types.Artifact, plan: _Plan) -> None:
  """The stock executor's artifact properties, set the same way."""
  split_names = plan.split_names
  statistics.split_names = artifact_utils.encode_split_names(split_names)
  statistics.span = plan.examples.span
  try:
    statistics.set_string_custom_property(
        stock_executor.STATS_DASHBOARD_LINK,
        stats_utils.generate_stats_dashboard_link(statistics))
  except Exception as e:  # pylint: disable=broad-except
    logging.exception('Failed to generate stats dashboard link because %s', e)
    statistics.set_string_custom_property(
        stock_executor.STATS_DASHBOARD_LINK, '')
  rates = {split: plan.stats_options.sample_rate or 1.0
           for split in split_names}
  for split, rate in plan.sample_rate_by_split.items():
    if split not in split_names:
      logging.error('Split %s provided in sample_rate_by_split is not valid.',
                    split)
      continue
    rates[split] = rate
  statistics.set_json_value_custom_property(
      stock_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,
      json_utils.dumps(rates))


def _split_files(examples: types.Artifact, split: str) -> List[str]:
  [pattern] = examples_utils.get_split_file_patterns([examples], split)
  return records.glob([pattern])


def _read_serialized(files: List[str], split: str) -> Iterator[np.ndarray]:
  """Batches of serialized examples of a split's files, read by tf.data in
  C++ (gzip and CRC checks included) in file order."""
  if not files:
    return
  # ExampleGen's files end in .gz; records decides compression by the names
  # as tfx_bsl does, and refuses a mix.
  dataset = records.dataset(files, name=f'Split {split}')
  yield from dataset.batch(DECODE_BATCH_ROWS).as_numpy_iterator()
