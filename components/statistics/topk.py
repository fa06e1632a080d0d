"""Exact top-k values and unique counts as a TFDV combiner.

The stock (Beam) StatisticsGen counts every string and categorical value
exactly, with a GroupBy per feature value (TFDV's ``TopKUniquesStatsGenerator``,
a ``TransformStatsGenerator``).  TFDV's in-memory path cannot run that
transform and substitutes a sketch (Misra-Gries with 1,024 counters, KMV with
16,384), which is approximate for features with more than about a thousand
distinct values; the flights data has two (``tailnum``, ``time_hour``).

``ExactTopKUniquesStatsGenerator`` counts exactly with Arrow's
``value_counts`` per record batch and a dictionary across batches, and builds
its protos with TFDV's own helpers, so its output equals the Beam path's:
same features, same unique counts, same top values and rank histogram, ties
broken the same way (larger value first).
"""

import collections
import heapq
from typing import Dict, Iterable, Optional

import pyarrow as pa
import tensorflow_data_validation as tfdv
from tensorflow_data_validation import types
from tensorflow_data_validation.arrow import arrow_util
from tensorflow_data_validation.statistics.generators import (
    top_k_uniques_stats_generator)
from tensorflow_data_validation.utils import schema_util
from tensorflow_data_validation.utils import stats_util
from tensorflow_data_validation.utils import (
    top_k_uniques_stats_util as topk_util)
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx_bsl.arrow import array_util
from tfx_bsl.statistics import merge_util

# feature path -> value -> number of occurrences.
Accumulator = Dict[types.FeaturePath, collections.Counter]


class ExactTopKUniquesStatsGenerator(tfdv.CombinerStatsGenerator):
  """Unweighted top-k and uniques for string and categorical INT features.

  Example weights are not supported: the Beam path's weighted counts depend
  on how its input was batched, so they cannot be reproduced; callers use
  the Beam path when weights are configured.
  """

  def __init__(self,
               schema: Optional[schema_pb2.Schema] = None,
               num_top_values: int = 2,
               frequency_threshold: int = 1,
               num_rank_histogram_buckets: int = 1000,
               name: str = 'ExactTopKUniquesStatsGenerator') -> None:
    super().__init__(name, schema)
    # The same feature selection as TFDV's TopKUniquesStatsGenerator.
    self._bytes_features = frozenset(
        schema_util.get_bytes_features(schema) if schema else [])
    self._categorical_numeric_types = (
        schema_util.get_categorical_numeric_feature_types(schema)
        if schema else {})
    self._num_top_values = num_top_values
    self._frequency_threshold = frequency_threshold
    self._num_rank_histogram_buckets = num_rank_histogram_buckets

  def _counts_values(self, path: types.FeaturePath,
                     feature_type: Optional[int]) -> bool:
    """TFDV's rule: strings and schema-categorical INTs, not bytes features
    (categorical FLOAT gets no top-k, with the Beam path's error log)."""
    return (path not in self._bytes_features and
            top_k_uniques_stats_generator._should_run(  # pylint: disable=protected-access
                self._categorical_numeric_types, path, feature_type))

  def create_accumulator(self) -> Accumulator:
    return {}

  def add_input(self, accumulator: Accumulator,
                examples: pa.RecordBatch) -> Accumulator:
    for path, array, _ in arrow_util.enumerate_arrays(
        examples, example_weight_map=None, enumerate_leaves_only=True):
      feature_type = stats_util.get_feature_type_from_arrow_type(
          path, array.type)
      if not self._counts_values(path, feature_type):
        continue
      values, _ = array_util.flatten_nested(array, False)
      if not len(values):  # pylint: disable=g-explicit-length-test
        continue
      # Vectorized in Arrow; only the distinct values reach Python.
      counts = values.value_counts()
      counter = accumulator.setdefault(path, collections.Counter())
      counter.update(dict(zip(counts.field('values').to_pylist(),
                              counts.field('counts').to_pylist())))
    return accumulator

  def merge_accumulators(self,
                         accumulators: Iterable[Accumulator]) -> Accumulator:
    result: Accumulator = {}
    for accumulator in accumulators:
      for path, counter in accumulator.items():
        if path in result:
          result[path].update(counter)
        else:
          result[path] = counter
    return result

  def extract_output(
      self, accumulator: Accumulator
  ) -> statistics_pb2.DatasetFeatureStatistics:
    protos = []
    keep = max(self._num_top_values, self._num_rank_histogram_buckets)
    for path, counter in accumulator.items():
      # (count, value) order, as Beam's Top.PerKey over the same tuples.
      top = heapq.nlargest(keep, ((c, v) for v, c in counter.items()))
      protos.append(topk_util.make_dataset_feature_stats_proto_topk_single(
          feature_path_tuple=path.steps(),
          value_count_list=[
              topk_util.FeatureValueCount(v, c) for c, v in top],
          is_weighted_stats=False,
          num_top_values=self._num_top_values,
          frequency_threshold=self._frequency_threshold,
          num_rank_histogram_buckets=self._num_rank_histogram_buckets))
      protos.append(topk_util.make_dataset_feature_stats_proto_unique_single(
          feature_path_tuple=path.steps(), num_uniques=len(counter)))
    if not protos:
      return statistics_pb2.DatasetFeatureStatistics()
    merged = merge_util.merge_dataset_feature_statistics(protos)
    return merged.datasets[0]
