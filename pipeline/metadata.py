"""Reading what a run did from the ML Metadata store.

Used by the run summary, the report and the tests: which nodes ran or were
cached in a pipeline run, what each produced, what was blessed and pushed.
"""

import dataclasses
from typing import Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

PIPELINE_RUN = 'pipeline_run'
NODE = 'node'


def connect_sqlite(path: str) -> metadata_store.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = path
  config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
  return metadata_store.MetadataStore(config)


@dataclasses.dataclass
class NodeRun:
  node_id: str
  state: str  # COMPLETE, CACHED, FAILED, RUNNING, ...
  execution: metadata_store_pb2.Execution
  outputs: Dict[str, List[metadata_store_pb2.Artifact]]

  @property
  def seconds(self) -> float:
    return (self.execution.last_update_time_since_epoch -
            self.execution.create_time_since_epoch) / 1000.0


def run_ids(store: metadata_store.MetadataStore) -> List[str]:
  """Pipeline run ids, oldest first."""
  contexts = store.get_contexts_by_type(PIPELINE_RUN)
  return [c.name for c in sorted(contexts, key=lambda c: c.id)]


def node_runs(store: metadata_store.MetadataStore,
              run_id: Optional[str] = None) -> Dict[str, NodeRun]:
  """node id -> what happened to it in the run (default: the latest run)."""
  if run_id is None:
    ids = run_ids(store)
    if not ids:
      return {}
    run_id = ids[-1]
  run = store.get_context_by_type_and_name(PIPELINE_RUN, run_id)
  result = {}
  executions = sorted(store.get_executions_by_context(run.id),
                      key=lambda e: e.id)  # Pipeline order.
  for execution in executions:
    node = next(c for c in store.get_contexts_by_execution(execution.id)
                if store.get_context_types_by_id([c.type_id])[0].name == NODE)
    events = store.get_events_by_execution_ids([execution.id])
    outputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    output_events = [e for e in events
                     if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(
        [e.artifact_id for e in output_events])}
    for event in output_events:
      key = event.path.steps[0].key if event.path.steps else ''
      outputs.setdefault(key, []).append(artifacts[event.artifact_id])
    result[node.name.split('.', 1)[-1]] = NodeRun(
        node_id=node.name.split('.', 1)[-1],
        state=metadata_store_pb2.Execution.State.Name(
            execution.last_known_state),
        execution=execution, outputs=outputs)
  return result


def custom(artifact: metadata_store_pb2.Artifact, key: str):
  """A custom property's value, whatever its type; None when absent."""
  if key not in artifact.custom_properties:
    return None
  value = artifact.custom_properties[key]
  return getattr(value, value.WhichOneof('value'))


def blessed_model_ids(store: metadata_store.MetadataStore) -> List[int]:
  """Ids of every model any ModelBlessing marked blessed, in any run."""
  ids = []
  for blessing in store.get_artifacts_by_type('ModelBlessing'):
    if custom(blessing, 'blessed') == 1:
      ids.append(custom(blessing, 'current_model_id'))
  return ids


def all_node_runs(store: metadata_store.MetadataStore
                  ) -> Dict[str, Dict[str, NodeRun]]:
  """run id -> ``node_runs(store, run id)``, for every run, oldest first.

  The same answer as calling ``node_runs`` once per run, in a number of
  queries that grows with the runs and nodes rather than with every
  execution, so that listing a long history stays fast.
  """
  node_of: Dict[int, str] = {}
  for node in store.get_contexts_by_type(NODE):
    for execution in store.get_executions_by_context(node.id):
      node_of[execution.id] = node.name.split('.', 1)[-1]
  runs = sorted(store.get_contexts_by_type(PIPELINE_RUN), key=lambda c: c.id)
  executions_of = {run.name: sorted(store.get_executions_by_context(run.id),
                                    key=lambda e: e.id)  # Pipeline order.
                   for run in runs}
  ids = [e.id for executions in executions_of.values() for e in executions]
  output_events = [e for e in store.get_events_by_execution_ids(ids)
                   if e.type == metadata_store_pb2.Event.OUTPUT] if ids else []
  artifacts = {a.id: a for a in store.get_artifacts_by_id(
      [e.artifact_id for e in output_events])} if output_events else {}
  outputs: Dict[int, Dict[str, List[metadata_store_pb2.Artifact]]] = {}
  for event in output_events:
    key = event.path.steps[0].key if event.path.steps else ''
    outputs.setdefault(event.execution_id, {}).setdefault(key, []).append(
        artifacts[event.artifact_id])
  result = {}
  for run_id, executions in executions_of.items():
    result[run_id] = {}
    for execution in executions:
      node_id = node_of.get(execution.id, '')
      result[run_id][node_id] = NodeRun(
          node_id=node_id,
          state=metadata_store_pb2.Execution.State.Name(
              execution.last_known_state),
          execution=execution, outputs=outputs.get(execution.id, {}))
  return result
