"""One Trainer worker: ``python -m kubeflow.training.launch ...``.

Every replica of a Kubeflow TFJob (or a Vertex AI custom job) runs this same
command; the operator gives each its own ``TF_CONFIG``. It resolves its
arguments into ``FnArgs`` with the TFX Trainer executor's own code (the same
file patterns, data accessor, transform output and model directories the
Trainer component would pass), then calls the project's ``run_fn``, which
picks ``MultiWorkerMirroredStrategy`` when ``distribution.strategy`` is
``multi_worker``.

Unlike the TFX executor, it only requires the exported model on the chief:
other workers never write it.
"""

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import tensorflow as tf
from absl import logging
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.components.util import udf_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs

from components.trainer import strategy as strategy_lib
from core import config as config_lib

RUN_FN = 'components.trainer.run.run_fn'
_SPLIT_PREFIX = 'Split-'


def _split_names(examples_uri: str) -> List[str]:
  splits = sorted(name.rstrip('/')[len(_SPLIT_PREFIX):]
                  for name in tf.io.gfile.listdir(examples_uri)
                  if name.startswith(_SPLIT_PREFIX))
  if not splits:
    raise ValueError(f'--examples {examples_uri}: no Split-* directories; '
                     'pass the transformed_examples artifact of Transform')
  return splits


def _artifact(cls, uri: str):
  artifact = cls()
  artifact.uri = uri
  return artifact


def build_fn_args(*, examples: str, transform_graph: str, model: str,
                  model_run: str, config: config_lib.PipelineConfig,
                  schema: Optional[str] = None, train_steps: int = 0,
                  eval_steps: int = 0,
                  hyperparameters: Optional[Dict] = None
                  ) -> fn_args_utils.FnArgs:
  """The ``FnArgs`` the TFX Trainer would hand ``run_fn`` for these URIs.

  ``examples``, ``transform_graph`` and ``schema`` are artifact URIs from a
  Transform (and SchemaGen) run; ``model`` and ``model_run`` are the output
  URIs (the serving model goes to ``model``/Format-Serving, as in TFX).
  """
  examples_artifact = _artifact(standard_artifacts.Examples, examples)
  examples_artifact.split_names = artifact_utils.encode_split_names(
      _split_names(examples))
  input_dict = {
      specs.EXAMPLES_KEY: [examples_artifact],
      specs.TRANSFORM_GRAPH_KEY: [
          _artifact(standard_artifacts.TransformGraph, transform_graph)],
  }
  if schema:
    input_dict[specs.SCHEMA_KEY] = [_artifact(standard_artifacts.Schema,
                                              schema)]
  output_dict = {
      specs.MODEL_KEY: [_artifact(standard_artifacts.Model, model)],
      specs.MODEL_RUN_KEY: [_artifact(standard_artifacts.ModelRun, model_run)],
  }
  exec_properties = {
      specs.TRAIN_ARGS_KEY: json.dumps({'num_steps': train_steps}),
      specs.EVAL_ARGS_KEY: json.dumps({'num_steps': eval_steps}),
      specs.CUSTOM_CONFIG_KEY: json.dumps({'config': config.to_dict()}),
  }
  # pylint: disable=protected-access
  fn_args = trainer_executor.GenericExecutor()._GetFnArgs(
      input_dict, output_dict, exec_properties)
  fn_args.hyperparameters = hyperparameters
  return fn_args


def is_chief() -> bool:
  """This process's role from TF_CONFIG, by the rule the strategy module uses
  (worker 0 leads a cluster without a chief, as in TensorFlow; TFX's executor
  would call no one chief there)."""
  tf_config = json.loads(os.environ.get('TF_CONFIG') or '{}')
  task = tf_config.get('task') or {}
  return strategy_lib.is_chief_task(task.get('type'), int(task.get('index', 0)),
                                    tf_config.get('cluster') or {})


def run(fn_args: fn_args_utils.FnArgs, run_fn: str = RUN_FN) -> None:
  """Calls ``run_fn``; the chief then checks that it exported the model."""
  fn = udf_utils.get_fn({'run_fn': run_fn}, 'run_fn')
  fn(fn_args)
  if is_chief() and not tf.io.gfile.exists(fn_args.serving_model_dir):
    raise RuntimeError(
        f'run_fn did not export a model to {fn_args.serving_model_dir}')


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m kubeflow.training.launch', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--examples', required=True,
                      help="URI of Transform's transformed_examples artifact")
  parser.add_argument('--transform-graph', required=True,
                      help="URI of Transform's transform_graph artifact")
  parser.add_argument('--schema', help='URI of the Schema artifact (optional)')
  parser.add_argument('--model', required=True,
                      help='output URI of the model (shared storage)')
  parser.add_argument('--model-run', required=True,
                      help='output URI for logs, metrics JSON and the backup '
                      '(shared storage; keep it across worker restarts)')
  parser.add_argument('--config', help='pipeline YAML (default: built in)')
  parser.add_argument('--set', action='append', default=[],
                      metavar='SECTION.KEY=VALUE', help='config override')
  parser.add_argument('--train-steps', type=int, default=0)
  parser.add_argument('--eval-steps', type=int, default=0)
  parser.add_argument('--run-fn', default=RUN_FN)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  # Pod logs then show the strategy, replicas, batch and sharding decisions.
  logging.set_verbosity(logging.INFO)
  cfg = config_lib.load_config(args.config, args.set)
  fn_args = build_fn_args(
      examples=args.examples, transform_graph=args.transform_graph,
      model=args.model, model_run=args.model_run, config=cfg,
      schema=args.schema, train_steps=args.train_steps,
      eval_steps=args.eval_steps)
  run(fn_args, args.run_fn)
  return 0


if __name__ == '__main__':
  sys.exit(main())
