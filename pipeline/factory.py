"""The pipeline, built by one pure factory.

``create_pipeline`` takes the typed configuration and resolved locations and
returns a ``tfx.dsl.Pipeline``; it never reads the environment or the
filesystem, so the local runner and the Kubeflow compiler build the very same
graph. Locations may be ``RuntimeParameter``s on Kubeflow.

ExampleGen (the data format's) -> StatisticsGen (in memory) -> SchemaGen | ImportSchemaGen
  -> ExampleValidator -> AnomalyGate -> Transform -> [Tuner] -> Trainer
  -> GeneralizationGate (with the latest blessed model) -> SafePusher
"""

import json
from typing import Optional, Sequence, Union

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.gate.component import GeneralizationGate
from components.ingest import formats
from components.pusher.component import SafePusher
from components.statistics.component import StatisticsGen
from components.transform import Transform
from components.validation import AnomalyGate
from core import config as config_lib

PathLike = Union[str, tfx.dsl.experimental.RuntimeParameter]

RUN_FN = 'components.trainer.run.run_fn'
TUNER_FN = 'components.trainer.tuning.tuner_fn'
PREPROCESSING_FN = 'components.preprocessing.preprocessing_fn'

TRAIN, EVAL, TEST = 'train', 'eval', 'test'


class NodeIds:
  """Readable node ids; the metadata store and the Kubeflow spec use these."""
  EXAMPLE_GEN = 'example_gen'
  STATISTICS_GEN = 'statistics_gen'
  SCHEMA_GEN = 'schema_gen'
  EXAMPLE_VALIDATOR = 'example_validator'
  ANOMALY_GATE = 'anomaly_gate'
  TRANSFORM = 'transform'
  TUNER = 'tuner'
  TRAINER = 'trainer'
  LATEST_BLESSED = 'latest_blessed_model'
  GATE = 'gate'
  PUSHER = 'pusher'


def create_pipeline(config: config_lib.PipelineConfig,
                    *,
                    pipeline_root: PathLike,
                    data_root: PathLike,
                    data_file_pattern: str,
                    serving_dir: PathLike,
                    beam_pipeline_args: Sequence[str] = (),
                    metadata_connection_config: Optional[
                        metadata_store_pb2.ConnectionConfig] = None,
                    enable_cache: bool = True,
                    train_steps: Optional[Union[
                        int, tfx.dsl.experimental.RuntimeParameter]] = None,
                    code_version: str = ''
                    ) -> tfx.dsl.Pipeline:
  """Builds the pipeline. ``data_root`` is the folder ExampleGen reads,
  ``data_file_pattern`` the file(s) in it. ``train_steps`` (optional) caps
  the Trainer's steps; epochs and early stopping come from ``config``.
  ``code_version`` (pipeline/code_version.py) keys the cache to the code."""
  if config.data.features.auto:
    # Components get the feature lists as constants; a runner infers them
    # from the data first (pipeline.preflight), where the data is readable.
    raise config_lib.ConfigError(
        'data.features: auto: the features must be inferred from the data '
        'before the pipeline is built (the runners do it)')
  splits = config.data.splits
  # Each component gets only the sections it uses, so that changing, say, a
  # gate threshold re-runs the gate but reuses Transform and the Trainer.
  sections = config.to_dict()
  transform_config = {'config': {k: sections[k] for k in ('task', 'data')}}
  trainer_config = {'config': {k: sections[k] for k in (
      'task', 'data', 'model', 'regularization', 'tuning', 'distribution',
      'report')}}

  # The format's own ExampleGen (CSV, Parquet or TFRecord): data.format, or
  # for ``auto`` the format the pattern's file names claim.
  input_format = formats.resolve(config.data.format, data_file_pattern
                                 ).configured(config.data.delimiter,
                                              data_file_pattern)
  example_gen = input_format.example_gen(
      input_base=data_root,
      input_config=tfx.proto.Input(splits=[
          tfx.proto.Input.Split(name='all', pattern=data_file_pattern)]),
      output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(
          splits=[tfx.proto.SplitConfig.Split(name=name, hash_buckets=buckets)
                  for name, buckets in splits.as_buckets().items()])),
      missing_values=config.data.missing_values,
      required_columns=config.data.label.required_columns,
      code_version=code_version,
  ).with_id(NodeIds.EXAMPLE_GEN)

  statistics_gen = StatisticsGen(
      examples=example_gen.outputs['examples']).with_id(NodeIds.STATISTICS_GEN)

  if config.data.schema_path:
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=config.data.schema_path)
  else:
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs['statistics'],
        infer_feature_shape=True)
  schema_gen = schema_gen.with_id(NodeIds.SCHEMA_GEN)

  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'],
      schema=schema_gen.outputs['schema']).with_id(NodeIds.EXAMPLE_VALIDATOR)
  anomaly_gate = AnomalyGate(
      statistics=statistics_gen.outputs['statistics'],
      anomalies=example_validator.outputs['anomalies'],
      task=config.task,
      label=json.dumps(sections['data']['label'], sort_keys=True),
      features=json.dumps(sections['data']['features'], sort_keys=True)
  ).with_id(NodeIds.ANOMALY_GATE)

  transform = Transform(  # The stock component, batching by size.
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      preprocessing_fn=PREPROCESSING_FN,
      custom_config=transform_config,
      # Only the Trainer (and Tuner) read transformed examples; the gate and
      # the Pusher's check feed raw test examples to the exported model.
      splits_config=tfx.proto.SplitsConfig(
          analyze=[TRAIN], transform=[TRAIN, EVAL]),
      # StatisticsGen already described the raw data; Transform's own pre-
      # and post-transform statistics would be TFDV passes done twice.
      disable_statistics=True,
      # The analyzer cache pays off for incremental spans; we re-analyze
      # whole datasets, where writing the cache is pure overhead.
      disable_analyzer_cache=True,
      # tf.Transform's TF2 mode re-traces preprocessing_fn as a tf.function
      # for every analysis phase and for the export; graph mode builds the
      # graph once. Transform took 29 s instead of 37 s on the taxi sample
      # (measured), and the Trainer loads either kind of transform graph.
      force_tf_compat_v1=True,
  ).with_id(NodeIds.TRANSFORM)
  # No features are computed from data that failed validation.
  transform.add_upstream_node(anomaly_gate)

  components = [example_gen, statistics_gen, schema_gen, example_validator,
                anomaly_gate, transform]

  hyperparameters = None
  if config.tuning.enabled:
    # Imported only for a tuned pipeline: it loads TensorFlow and KerasTuner.
    from tfx.dsl.components.base import executor_spec  # pylint: disable=g-import-not-at-top
    from components.trainer import tuning  # pylint: disable=g-import-not-at-top
    tuner = tfx.components.Tuner(
        tuner_fn=TUNER_FN,
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        train_args=tfx.proto.TrainArgs(splits=[TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=[EVAL]),
        # The search never reads the report's settings: switching them
        # re-runs the Trainer but reuses the search.
        custom_config={'config': {k: v for k, v in
                                  trainer_config['config'].items()
                                  if k != 'report'}}).with_id(NodeIds.TUNER)
    # TFX 1.16's Tuner takes no executor argument. The stock executor plus
    # trials.json (each trial's settings, score and gap) in tuner_results,
    # which the run report draws the regularization path from.
    tuner.executor_spec = executor_spec.ExecutorClassSpec(tuning.Executor)
    hyperparameters = tuner.outputs['best_hyperparameters']
    components.append(tuner)

  trainer = tfx.components.Trainer(
      run_fn=RUN_FN,
      examples=transform.outputs['transformed_examples'],
      transform_graph=transform.outputs['transform_graph'],
      schema=schema_gen.outputs['schema'],
      hyperparameters=hyperparameters,
      train_args=tfx.proto.TrainArgs(splits=[TRAIN], num_steps=train_steps),
      eval_args=tfx.proto.EvalArgs(splits=[EVAL]),
      custom_config=trainer_config).with_id(NodeIds.TRAINER)

  # The gate is the only producer of ModelBlessing in this pipeline, so the
  # latest blessed model passed the gap check too.
  latest_blessed = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing)
  ).with_id(NodeIds.LATEST_BLESSED)

  gate = GeneralizationGate(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      baseline_model=latest_blessed.outputs['model'],
      schema=schema_gen.outputs['schema'],
      gate=config.gate,
      label_key=config.data.label.name,
      task=config.task,
      held_out_split=TEST,
      train_split=TRAIN).with_id(NodeIds.GATE)

  pusher = SafePusher(
      model=trainer.outputs['model'],
      model_blessing=gate.outputs['blessing'],
      examples=example_gen.outputs['examples'],
      serving_dir=serving_dir,
      smoke_split=TEST).with_id(NodeIds.PUSHER)

  components += [trainer, latest_blessed, gate, pusher]
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=pipeline_root,
      components=components,
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args))

