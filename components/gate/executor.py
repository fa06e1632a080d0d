"""Executor of the generalization gate.

One Beam pipeline and one TFMA pass over the union of

* the held-out split, and
* a deterministic sample of the train split (the examples with the smallest
  fingerprints) as large as the held-out split, bounded for cost
  (:func:`train_sample_rows`), so that neither side dominates the noise of
  the gap between them,

each row tagged with its split, and metrics sliced by that tag (and by the
configured slice features within it).  The latest blessed model, when there
is one, is TFMA's baseline in the same pass, so candidate and baseline are
scored on the same held-out examples. Each row also gets its bootstrap key
(a hash of its raw bytes, in its side's stream), from which the task's
accumulators weight it in every bootstrap replicate: the gate's intervals.

What is measured is the task's (``core/tasks``): the candidate's
``task.json`` (written by the Trainer into the exported model) names the
task, the label and the label's ``info`` (the train prior, the classes, the
target's mean), and the one TFMA metric (:mod:`components.gate.metrics`)
runs the task's accumulator on the serving output the task names. The
baseline is compared only when it was trained for the same task, label and
classes; otherwise the gate decides without it and says why.

The metrics are then handed to :mod:`components.gate.decision`, and the
blessing is written the way the stock Evaluator writes it (``BLESSED`` or
``NOT_BLESSED`` file, ``blessed``/``current_model_id`` custom properties), so
that the Pusher and ``LatestBlessedModelStrategy`` read it unchanged, plus
``gate.json`` and flat custom properties that say why.
"""

import hashlib
import heapq
import json
import math
import os
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple)

import apache_beam as beam
from google.protobuf import wrappers_pb2
import numpy as np
import pyarrow as pa
import tensorflow_model_analysis as tfma
from absl import logging
from tensorflow_model_analysis.proto import metrics_for_slice_pb2
from tensorflow_model_analysis.slicer import slicer_lib
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils
from tfx_bsl.tfxio import tensor_adapter

from components.gate import decision as decision_lib
from components.gate import metrics as gate_metrics
from components.gate.keys import (  # noqa: F401  (the executor's names too)
    BASELINE_MODEL_KEY, BLESSING_KEY, EVALUATION_KEY, EXAMPLES_KEY,
    GATE_CONFIG_KEY, GATE_JSON, HELD_OUT_SPLIT_KEY, LABEL_KEY, MODEL_KEY,
    SCHEMA_KEY, TASK_KEY, TRAIN_SPLIT_KEY)
from core import config as config_lib
from core import records as records_lib
from core import tasks as tasks_lib

# TFMA's output, below the evaluation artifact.
TFMA_DIR = 'tfma'
# The column the gate adds to tell held-out rows from train rows in its one
# TFMA pass; an input feature of this name is rejected.
SPLIT_FEATURE = '__gate_split__'
# Bootstrap streams (core/tasks/base.py): the two sides' replicates are
# independent.
STREAMS = {'held_out': 0, 'train': 1}
# Train splits up to this size (gzipped TFRecords) are sampled in this process
# with a heap; larger ones in Beam, which can spread the reading. The sample
# is the same either way.
IN_PROCESS_SAMPLE_MAX_BYTES = 256 * 1024 ** 2
CANDIDATE = 'candidate'
BASELINE = 'baseline'


def eval_config(task: tasks_lib.Task, label_key: str, slice_features,
                infos: Mapping[str, Mapping[str, Any]],
                replicates: int = 0) -> tfma.EvalConfig:
  """TFMA config: the task's statistics per split (and per split and slice
  feature) only, with ``replicates`` bootstrap replicates; the thresholds
  live in the decision.

  ``infos``: the label info of each model to score, by model name
  (``CANDIDATE``, and ``BASELINE`` when there is one); each model's metric
  gets its own (its own trivial predictor).
  """
  def spec(name):
    # tf_generic: TFMA calls the signatures of the SavedModel and never loads
    # it as a Keras model (no custom objects to register, no compiled
    # metrics re-created in every combiner).
    return tfma.ModelSpec(
        name=name, signature_name='serving_default',
        preprocessing_function_names=['transform_features'],
        label_key=label_key, prediction_key=task.prediction_key,
        model_type=tfma.TF_GENERIC, is_baseline=name == BASELINE)
  names = [CANDIDATE] + [BASELINE] * (BASELINE in infos)
  return tfma.EvalConfig(
      model_specs=[spec(name) for name in names],
      # No overall slice: it would mix the held-out rows with the train ones.
      slicing_specs=[tfma.SlicingSpec(feature_keys=[SPLIT_FEATURE])] + [
          tfma.SlicingSpec(feature_keys=[SPLIT_FEATURE, f])
          for f in slice_features],
      # One spec per model: with a single model TFMA names it '' anyway.
      metrics_specs=[tfma.MetricsSpec(
          metrics=[gate_metrics.metric_config(task, infos[name],
                                              replicates)],
          model_names=[name] if len(names) > 1 else [])
                     for name in names],
      # No "default" metrics: ours are computed from predictions.
      options=tfma.Options(
          include_default_metrics=wrappers_pb2.BoolValue(value=False)))


def _split_and_slice(slice_key) -> Tuple[str, str]:
  """(split, slice name) of a serialized TFMA slice key; '' is the whole split."""
  columns = dict(slicer_lib.deserialize_slice_key(slice_key))
  split = columns.pop(SPLIT_FEATURE)
  if isinstance(split, bytes):
    split = split.decode()
  rest = tuple(sorted(columns.items()))
  return split, slicer_lib.stringify_slice_key(rest) if rest else ''


def _metric_value(value) -> Any:
  """A TFMA MetricValue as a float or a (nested) list; None if neither."""
  if value.HasField('double_value'):
    return value.double_value.value
  if value.HasField('array_value'):
    array = value.array_value
    kind = metrics_for_slice_pb2.ArrayValue
    values = {kind.INT32: array.int32_values, kind.INT64: array.int64_values,
              kind.FLOAT32: array.float32_values,
              kind.FLOAT64: array.float64_values}.get(array.data_type)
    if values is None:
      return None
    data = np.asarray(values)
    return (data.reshape(tuple(array.shape)) if array.shape else data).tolist()
  return None


def load_slice_metrics(output_path: str, branches: Dict[str, str],
                       task: tasks_lib.Task,
                       replicates: int = 0) -> Dict[str, Dict[str, Any]]:
  """branch -> model name -> slice name -> metric name -> value (a float,
  or a list for ``task.gate_arrays`` and for the replicates), for
  ``branches`` mapping branch names to the split tags written in the
  data."""
  by_tag = {tag: branch for branch, tag in branches.items()}
  names = set(gate_metrics.key_names(task, replicates))
  result: Dict[str, Dict[str, Any]] = {branch: {} for branch in branches}
  for per_slice in tfma.load_metrics(output_path):
    tag, name = _split_and_slice(per_slice.slice_key)
    for kv in per_slice.metric_keys_and_values:
      if kv.key.name not in names or kv.key.is_diff:
        continue
      value = _metric_value(kv.value)
      if value is None:
        continue
      model = kv.key.model_name or CANDIDATE
      result[by_tag[tag]].setdefault(model, {}).setdefault(name, {})[
          kv.key.name] = value
  return result


def _tag_split(batch: pa.RecordBatch, tag: str,
               stream: int) -> pa.RecordBatch:
  """Adds the column TFMA slices on to tell the branches apart, and each
  row's bootstrap key (a hash of its raw record, in ``stream``)."""
  column = pa.array([[tag.encode()]] * batch.num_rows, pa.list_(pa.binary()))
  records = batch.column(batch.schema.get_field_index(
      tfma.ARROW_INPUT_COLUMN)).flatten().to_pylist()
  keys = pa.array([[tasks_lib.base.bootstrap_key(r, stream)]
                   for r in records], pa.list_(pa.int64()))
  return pa.RecordBatch.from_arrays(
      batch.columns + [column, keys],
      batch.schema.names + [SPLIT_FEATURE, gate_metrics.KEY_FEATURE])


def _fingerprint(record: bytes) -> int:
  return int.from_bytes(hashlib.blake2b(record, digest_size=8).digest(), 'big')


def train_sample_rows(gate: config_lib.GateConfig, held_out_rows: int) -> int:
  """The train sample's size: as many rows as the held-out split holds (a gap
  is as noisy as its noisier side), at least ``train_sample_size``, at most
  ``train_sample_max_size`` (the train side's cost)."""
  return min(max(held_out_rows, gate.train_sample_size),
             gate.train_sample_max_size)


@beam.ptransform_fn
def _DeterministicSample(records, size: int, rows=None):  # pylint: disable=invalid-name
  """The ``size`` records with the smallest fingerprints: stable across runs.

  ``rows``: a singleton PCollection; then only the first ``rows`` of those
  (a number known only once the pipeline runs)."""
  smallest = records | 'Smallest' >> beam.combiners.Top.Smallest(
      size, key=_fingerprint)
  if rows is None:
    return smallest | 'Flatten' >> beam.FlatMap(lambda batch: batch)
  return smallest | 'Flatten' >> beam.FlatMap(
      lambda batch, n: batch[:n], beam.pvalue.AsSingleton(rows))


def smallest_fingerprints(records: Iterable[bytes], size: int) -> List[bytes]:
  """What ``_DeterministicSample`` picks, computed in this process."""
  return heapq.nsmallest(size, records, key=_fingerprint)


def _read_small_split(uris: Sequence[str]) -> Optional[Iterator[bytes]]:
  """The split's serialized records if it is small gzipped TFRecords (as
  ExampleGen writes them), else None: the caller then samples in Beam."""
  files = records_lib.glob([io_utils.all_files_pattern(uri) for uri in uris])
  try:
    gzipped = records_lib.is_gzipped(files)
  except records_lib.MixedCompressionError:
    return None  # Beam reads each file by its own suffix.
  if not gzipped:
    return None
  if records_lib.size_above(files, IN_PROCESS_SAMPLE_MAX_BYTES) is not None:
    return None
  return records_lib.iterate(files)


def check_candidate(model_uri: str, task: tasks_lib.Task,
                    label_key: str) -> None:
  """Raises ValueError unless the candidate was trained for ``task`` on the
  label ``label_key`` (as its ``task.json`` records)."""
  path = path_utils.serving_model_path(model_uri)
  recorded, label, _ = tasks_lib.read_model_task(path)
  if recorded.name != task.name:
    raise ValueError(
        f'The gate is configured for task {task.name!r}, but the candidate '
        f'model {path} was trained for task {recorded.name!r} (its '
        f'{tasks_lib.TASK_JSON}); the pipeline\'s task and the model disagree.')
  if label != label_key:
    raise ValueError(
        f'The gate scores label {label_key!r}, but the candidate model {path} '
        f'was trained on label {label!r} (its {tasks_lib.TASK_JSON}).')


def baseline_not_comparable(model_uri: str,
                            baseline_uri: str) -> Optional[str]:
  """None when the baseline can be compared with the candidate (same task,
  label and classes), else the note the gate records instead."""
  path = path_utils.serving_model_path(baseline_uri)
  try:
    task, label, info = tasks_lib.read_model_task(path)
  except (FileNotFoundError, KeyError, ValueError) as e:
    return f'baseline not comparable: {e}'
  ours, our_label, our_info = tasks_lib.read_model_task(
      path_utils.serving_model_path(model_uri))
  if task.name != ours.name:
    return (f'baseline not comparable: {path} was trained for task '
            f'{task.name!r}, the candidate for {ours.name!r}')
  if label != our_label:
    return (f'baseline not comparable: {path} predicts label {label!r}, the '
            f'candidate {our_label!r}')
  if info.get('classes') != our_info.get('classes'):
    return (f'baseline not comparable: {path} has classes '
            f'{info.get("classes")}, the candidate {our_info.get("classes")}')
  return features_differ(
      path, tasks_lib.read_model_features(path),
      tasks_lib.read_model_features(path_utils.serving_model_path(model_uri)))


def features_differ(path: str, theirs: Optional[Mapping[str, Sequence[str]]],
                    ours: Optional[Mapping[str, Sequence[str]]]
                    ) -> Optional[str]:
  """The note for a baseline fed other features than the candidate (None
  when they are the same): its metrics would answer another question than
  "is the new model better on the same inputs"."""
  if theirs is None:
    return (f'baseline not comparable: {path} records no feature set '
            '(exported by an older Trainer)')
  differences = []
  for kind in sorted(set(theirs) | set(ours or {})):
    mine, other = set((ours or {}).get(kind, ())), set(theirs.get(kind, ()))
    if mine != other:
      differences.append(
          f'{kind}: the candidate adds {sorted(mine - other)}, drops '
          f'{sorted(other - mine)}')
  if differences:
    return (f'baseline not comparable: {path} was fed other features '
            f'({"; ".join(differences)})')
  return None


class Executor(evaluator_executor.Executor):
  """Scores the candidate on held-out and train data, then blesses or not.

  ``Do`` is our own; the stock Evaluator's executor is the base class because
  orchestrators key on it: TFX's Kubeflow V2 entrypoint rewrites a blessing's
  ``current_model_id`` into the artifact name its resolver matches only for
  Evaluator executors, and without that no run on Kubeflow would ever find
  its baseline.
  """

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    task = tasks_lib.get(exec_properties[TASK_KEY])
    gate = config_lib.parse_gate(json.loads(exec_properties[GATE_CONFIG_KEY]),
                                 task.name)
    label_key = exec_properties[LABEL_KEY]
    model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
    check_candidate(model.uri, task, label_key)
    baseline = (input_dict.get(BASELINE_MODEL_KEY) or [None])[0]
    note = baseline_not_comparable(model.uri, baseline.uri) if baseline else None
    if note:
      logging.warning('gate: %s', note)
      baseline = None
    evaluation_uri = artifact_utils.get_single_uri(output_dict[EVALUATION_KEY])
    blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])

    metrics = self.evaluate(
        examples=input_dict[EXAMPLES_KEY],
        schema_artifacts=input_dict.get(SCHEMA_KEY),
        model_uri=model.uri,
        baseline_uri=baseline.uri if baseline else None,
        label_key=label_key,
        held_out_split=exec_properties[HELD_OUT_SPLIT_KEY],
        train_split=exec_properties[TRAIN_SPLIT_KEY],
        gate=gate, output_uri=evaluation_uri)
    # A side or a baseline without metrics reaches the decision empty, where
    # it fails closed (a refused check), never as a skipped one.
    result = decision_lib.decide(
        task, metrics['held_out'].get(CANDIDATE, {}),
        metrics['train'].get(CANDIDATE, {}),
        metrics['held_out'].get(BASELINE, {}).get(decision_lib.OVERALL, {})
        if baseline else None, gate, baseline_note=note)
    for check in result.checks:
      logging.info('gate: %s', check.describe())
    write_blessing(blessing, result, model, baseline)
    io_utils.write_string_file(os.path.join(evaluation_uri, GATE_JSON),
                               json.dumps(result.to_dict(), indent=2))

  def evaluate(self, *, examples, schema_artifacts, model_uri: str,
               baseline_uri: Optional[str], label_key: str,
               held_out_split: str, train_split: Optional[str],
               gate: config_lib.GateConfig, output_uri: str) -> Dict[str, Any]:
    """Runs TFMA with the task the candidate's ``task.json`` records;
    ``train_split=None`` skips the train branch (benchmarks). The baseline,
    if given, must be comparable (:func:`baseline_not_comparable`).

    Returns :func:`load_slice_metrics`' branch -> model -> slice -> name ->
    value.
    """
    if train_split == held_out_split:
      raise ValueError(f'The gate needs two different splits; got '
                       f'{held_out_split!r} for both held-out and train.')
    task, _, info = tasks_lib.read_model_task(
        path_utils.serving_model_path(model_uri))
    infos = {CANDIDATE: info}
    if baseline_uri is not None:
      infos[BASELINE] = tasks_lib.read_model_task(
          path_utils.serving_model_path(baseline_uri))[2]
    schema = None
    if schema_artifacts:
      schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
          artifact_utils.get_single_uri(schema_artifacts)))
      for reserved, role in ((SPLIT_FEATURE, "tag each row's split"),
                             (gate_metrics.KEY_FEATURE,
                              "hold each row's bootstrap key")):
        if any(f.name == reserved for f in schema.feature):
          raise ValueError(f'Input feature {reserved!r} clashes with the '
                           f'column the gate uses to {role}; rename it.')
    tfxio_factory = tfxio_utils.get_tfxio_factory_from_artifact(
        examples=examples, telemetry_descriptors=['GeneralizationGate'],
        schema=schema, raw_record_column_name=tfma.ARROW_INPUT_COLUMN)

    def models(config):
      return [tfma.default_eval_shared_model(
          eval_saved_model_path=path_utils.serving_model_path(uri),
          model_name=spec.name, eval_config=config,
          include_default_metrics=False)
              for spec, uri in zip(config.model_specs,
                                   [model_uri, baseline_uri])]

    def split_tfxio(split):
      uris = artifact_utils.get_split_uris(examples, split)
      return tfxio_factory([io_utils.all_files_pattern(u) for u in uris])

    replicates = gate.bootstrap_replicates
    config = eval_config(task, label_key, gate.slice_features, infos,
                         replicates)
    branches = {'held_out': held_out_split}
    if train_split:
      branches['train'] = train_split
    output_path = os.path.join(output_uri, TFMA_DIR)
    with self._make_beam_pipeline() as p:
      held_out = split_tfxio(held_out_split)
      held_out_batches = p | 'ReadHeldOut' >> held_out.BeamSource()
      batches = [held_out_batches | 'TagHeldOut' >> beam.Map(
          _tag_split, held_out_split, STREAMS['held_out'])]
      if train_split:
        train = split_tfxio(train_split)
        held_out_records = _read_small_split(
            artifact_utils.get_split_uris(examples, held_out_split))
        records = _read_small_split(
            artifact_utils.get_split_uris(examples, train_split))
        if held_out_records is not None and records is not None:
          # Small splits are counted and sampled here: in Beam, reading them
          # and the Top-k's shuffle cost more stages than the sample's TFMA
          # work.
          size = train_sample_rows(gate, sum(1 for _ in held_out_records))
          sample = (p | 'SampleTrain' >> beam.Create(smallest_fingerprints(
              records, size)))
        else:
          # The held-out split's size is known once it is read: the sample
          # is the train_sample_max_size smallest fingerprints, cut there.
          rows = (held_out_batches
                  | 'RowsPerBatch' >> beam.Map(lambda batch: batch.num_rows)
                  | 'HeldOutRows' >> beam.CombineGlobally(sum)
                  | 'SampleRows' >> beam.Map(
                      lambda n: train_sample_rows(gate, n)))
          sample = (p | 'ReadTrain' >> train.RawRecordBeamSource()
                    | 'SampleTrain' >> _DeterministicSample(
                        gate.train_sample_max_size, rows))
        batches.append(
            sample | 'DecodeTrain' >> train.RawRecordToRecordBatch()
            | 'TagTrain' >> beam.Map(_tag_split, train_split,
                                     STREAMS['train']))
      # One TFMA pass over both, sliced by split: extraction, model calls and
      # metric combiners are set up once (a second pass cost 1.6x, measured).
      _ = (batches | 'Union' >> beam.Flatten()
           | 'Evaluate' >> tfma.ExtractEvaluateAndWriteResults(
               eval_shared_model=_one_or_many(models(config)),
               eval_config=config, output_path=output_path,
               tensor_adapter_config=_adapter(held_out)))
    return load_slice_metrics(output_path, branches, task, replicates)


def _one_or_many(models):
  return models[0] if len(models) == 1 else models


def _adapter(tfxio):
  return tensor_adapter.TensorAdapterConfig(
      arrow_schema=tfxio.ArrowSchema(),
      tensor_representations=tfxio.TensorRepresentations())


def write_blessing(blessing: types.Artifact, result: decision_lib.Decision,
                   model: types.Artifact,
                   baseline: Optional[types.Artifact]) -> None:
  """Writes the blessing exactly as the stock Evaluator does, plus the why.

  ``baseline``: the model the candidate was compared with, or None (no
  blessed model yet, or one that was not comparable).
  """
  blessing.set_string_custom_property('current_model', model.uri)
  blessing.set_int_custom_property('current_model_id', model.id)
  if baseline is not None:
    blessing.set_string_custom_property('baseline_model', baseline.uri)
    blessing.set_int_custom_property('baseline_model_id', baseline.id)
  blessing.set_int_custom_property('blessed', 1 if result.blessed else 0)
  blessing.set_string_custom_property('blessing_message', result.reason)
  blessing.set_string_custom_property(
      'failed_checks', ','.join(sorted({c.kind for c in result.failed})))
  blessing.set_string_custom_property('task', result.task)
  if result.baseline_note:
    blessing.set_string_custom_property('baseline_note', result.baseline_note)
  for check in result.checks:
    if not check.slice:
      value = float(check.value)
      # MLMD's SQLite store rejects NaN and infinities (a saturated model's
      # log loss, a one-class slice's AUC); such a check has already failed.
      if math.isfinite(value):
        blessing.set_float_custom_property(f'{check.kind}_{check.metric}', value)
      else:
        blessing.set_string_custom_property(f'{check.kind}_{check.metric}',
                                            str(value))
  io_utils.write_string_file(
      os.path.join(blessing.uri, 'BLESSED' if result.blessed else 'NOT_BLESSED'),
      '')
  io_utils.write_string_file(os.path.join(blessing.uri, GATE_JSON),
                             json.dumps(result.to_dict(), indent=2))
