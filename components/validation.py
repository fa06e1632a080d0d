"""Stops the run before training when ExampleValidator found anomalies.

ExampleValidator only records anomalies; this step reads them, writes a
readable report and fails the run when any anomaly is blocking, so that no
model is trained on data that does not match the schema. Anomaly types in
``WARN_ONLY`` are reported but do not block: a category value in the eval or
test split that the train split never showed (the schema is inferred from
train) is normal for tabular data and is handled by Transform's OOV buckets.
"""

import os
from typing import Dict, List, Tuple

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

WARN_ONLY = frozenset({'ENUM_TYPE_UNEXPECTED_STRING_VALUES'})
ANOMALIES_FILE = 'SchemaDiff.pb'


class DataAnomalyError(RuntimeError):
  """The data does not match the schema; the message lists what is wrong."""


def describe(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]
             ) -> Tuple[List[str], List[str]]:
  """(blocking, warnings): one readable line per anomaly."""
  blocking, warnings = [], []
  for split, anomalies in sorted(anomalies_by_split.items()):
    for feature, info in sorted(anomalies.anomaly_info.items()):
      types = {anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason}
      line = (f'split {split!r}, column {feature!r}: {info.short_description} '
              f'- {info.description}')
      (warnings if types <= WARN_ONLY else blocking).append(line)
    if anomalies.HasField('dataset_anomaly_info'):
      info = anomalies.dataset_anomaly_info
      blocking.append(f'split {split!r}, dataset: {info.short_description} - '
                      f'{info.description}')
  return blocking, warnings


def read_anomalies(uri: str, splits) -> Dict[str, anomalies_pb2.Anomalies]:
  result = {}
  for split in splits:
    path = os.path.join(uri, f'Split-{split}', ANOMALIES_FILE)
    anomalies = anomalies_pb2.Anomalies()
    with open(path, 'rb') as f:
      anomalies.ParseFromString(f.read())
    result[split] = anomalies
  return result


@tfx.dsl.components.component
def AnomalyGate(  # pylint: disable=invalid-name
    anomalies: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleAnomalies],
    report: tfx.dsl.components.OutputArtifact[
        tfx.types.standard_artifacts.String]) -> None:
  """Fails the run on blocking anomalies; records the report either way."""
  splits = artifact_utils.decode_split_names(anomalies.split_names)
  blocking, warnings = describe(read_anomalies(anomalies.uri, splits))
  lines = ([f'BLOCKING {line}' for line in blocking] +
           [f'warning {line}' for line in warnings]) or ['no anomalies']
  report.value = '\n'.join(lines) + '\n'
  if blocking:
    raise DataAnomalyError(
        'ExampleValidator found data that does not match the schema; '
        'stopping before training:\n  ' + '\n  '.join(blocking))
