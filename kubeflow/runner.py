"""Compiles the pipeline for Kubeflow Pipelines v2 (and Vertex AI Pipelines).

:func:`compile_pipeline` builds the very graph the local runner runs, with
``pipeline.factory.create_pipeline``, and hands it to TFX's
``KubeflowV2DagRunner``. Nothing here touches the network or a bucket, so a
``gs://`` pipeline root compiles offline.

What a user can change per run, without recompiling (see docs/kubeflow.md):

* the pipeline root: KFP's own per-run ``pipeline_root`` option (the compiled
  value is only the default ``runtimeConfig.gcsOutputDirectory``);
* ``data_root`` (the folder ExampleGen reads) and ``serving_dir`` (where the
  Pusher publishes): TFX ``RuntimeParameter``s;
* ``train_args`` (the Trainer's ``TrainArgs`` JSON, e.g. a step budget) and
  ``gate_config`` (the gate's thresholds, JSON): the compiled constants of
  these two task inputs are promoted to pipeline parameters, with the
  compiled values as defaults.

The Beam arguments come from the ``beam`` section of the configuration, so a
per-environment YAML (kubeflow/environments/) switches DirectRunner to
Dataflow, Flink or Spark; ``{image}`` in ``beam.extra_args`` is replaced by the
image the spec names, so Beam workers run the same code as the tasks.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from typing import Any, Dict, Optional, Sequence, Tuple

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from components.ingest import formats
from kubeflow import dockerfile
from core import config as config_lib
from pipeline import code_version, factory
from pipeline import local_runner

# The taxi sample inside the image (it ships in the tfx wheel).
IMAGE_VENV = dockerfile.IMAGE_VENV
IMAGE_TAXI_DATA_ROOT = dockerfile.IMAGE_TAXI_DATA_ROOT

# Pipeline parameters that TFX RuntimeParameters provide.
DATA_ROOT_PARAM = 'data_root'
SERVING_DIR_PARAM = 'serving_dir'
# (task, task input) -> pipeline parameter: compiled constants made runtime
# parameters. TFX cannot put a RuntimeParameter inside a proto or a dict, but
# in the spec both are plain JSON strings the executor parses.
PROMOTED_INPUTS: Dict[Tuple[str, str], str] = {
    (factory.NodeIds.TRAINER, 'train_args'): 'train_args',
    (factory.NodeIds.GATE, 'gate_config'): 'gate_config',
}

IMAGE_PLACEHOLDER = '{image}'


def default_image() -> str:
  """``tfx-generalize:<version>``: what ``docker build -t`` is documented with."""
  return f'tfx-generalize:{metadata.version("tfx-generalize")}'


def _remote(path: Optional[str]) -> bool:
  return bool(path) and '://' in path


def resolve_locations(config: config_lib.PipelineConfig, *,
                      pipeline_root: Optional[str],
                      data_root: Optional[str],
                      serving_dir: Optional[str]) -> Dict[str, Any]:
  """Compile-time defaults for the locations; explicit arguments win.

  Local paths in ``output`` mean nothing on a cluster, so only URLs are taken
  from the configuration. Without a root the spec leaves it to the run (KFP
  falls back to its configured default root; Vertex asks for one), and
  ``serving_dir`` then has no default: a run must pass it.
  """
  out = config.output
  if pipeline_root is None:
    configured = out.resolve(out.pipeline_root)
    pipeline_root = configured if _remote(configured) else ''
  if serving_dir is None:
    configured = out.resolve(out.serving_dir)
    if _remote(configured):
      serving_dir = configured
    elif pipeline_root:
      serving_dir = pipeline_root.rstrip('/') + '/serving_model'
  if config.data.path:
    # From the string alone (no bucket is listed at compile time): a file's
    # folder and name, a folder (a trailing '/' or no extension) and its
    # format's pattern, or a glob split before its first wildcard.
    fmt = formats.resolve(config.data.format, config.data.path)
    where = formats.location(config.data.path, fmt)
    default_root, pattern = where.root, where.pattern
  else:
    default_root, pattern = IMAGE_TAXI_DATA_ROOT, os.path.basename(
        config_lib.taxi_sample_path())
  return {
      'pipeline_root': pipeline_root,
      'data_root': data_root or default_root,
      'data_file_pattern': pattern,
      'serving_dir': serving_dir,
  }


def kubeflow_beam_args(config: config_lib.PipelineConfig,
                       image: str) -> list:
  """The ``beam`` section as flags; ``{image}`` becomes the task image."""
  # rows=None: the input size is unknown at compile time, so ``auto`` means
  # in-memory DirectRunner; big data belongs on a distributed runner.
  args = local_runner.beam_args(config.beam, rows=None)
  return [a.replace(IMAGE_PLACEHOLDER, image) for a in args]


def build_pipeline_job(config: config_lib.PipelineConfig, *,
                       image: Optional[str] = None,
                       pipeline_root: Optional[str] = None,
                       data_root: Optional[str] = None,
                       serving_dir: Optional[str] = None,
                       beam_pipeline_args: Optional[Sequence[str]] = None,
                       enable_cache: bool = True) -> dict:
  """The PipelineJob as a JSON-ready dict (``pipelineSpec`` + ``runtimeConfig``)."""
  image = image or default_image()
  where = resolve_locations(config, pipeline_root=pipeline_root,
                            data_root=data_root, serving_dir=serving_dir)
  data_root_param = tfx.dsl.experimental.RuntimeParameter(
      name=DATA_ROOT_PARAM, ptype=str, default=where['data_root'])
  serving_dir_param = tfx.dsl.experimental.RuntimeParameter(
      name=SERVING_DIR_PARAM, ptype=str, default=where['serving_dir'])
  if beam_pipeline_args is None:
    beam_pipeline_args = kubeflow_beam_args(config, image)
  pipeline = factory.create_pipeline(
      config,
      pipeline_root=where['pipeline_root'],
      data_root=data_root_param,
      data_file_pattern=where['data_file_pattern'],
      serving_dir=serving_dir_param,
      beam_pipeline_args=beam_pipeline_args,
      enable_cache=enable_cache,
      code_version=code_version.code_version())
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
          default_image=image,
          # Schema 2.1 (parameterValues, typed inputs): what KFP 2.x and
          # Vertex expect; 2.0 is the deprecated Value-based form.
          use_pipeline_spec_2_1=True))
  defaults = {DATA_ROOT_PARAM: where['data_root']}
  if where['serving_dir']:
    defaults[SERVING_DIR_PARAM] = where['serving_dir']
  job = runner.run(pipeline, parameter_values=defaults, write_out=False)
  _promote_inputs(job['pipelineSpec'])
  _declare_defaults(job)
  # Fails here, not on the cluster, if the spec is not a valid PipelineJob.
  json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())
  return job


def _promote_inputs(spec: dict) -> None:
  """Turns the PROMOTED_INPUTS task constants into pipeline parameters."""
  tasks = spec['root']['dag']['tasks']
  params = spec['root'].setdefault('inputDefinitions', {}).setdefault(
      'parameters', {})
  for (task, key), name in PROMOTED_INPUTS.items():
    if task not in tasks or key not in tasks[task]['inputs']['parameters']:
      raise ValueError(f'cannot promote {task}.{key} to a pipeline parameter: '
                       'the compiled pipeline has no such task input')
    source = tasks[task]['inputs']['parameters'][key]
    if 'runtimeValue' not in source:
      raise ValueError(f'{task}.{key} is not a compiled constant: {source}')
    value = source['runtimeValue']['constant']
    tasks[task]['inputs']['parameters'][key] = {
        'componentInputParameter': name}
    params[name] = {'parameterType': 'STRING', 'defaultValue': value,
                    'isOptional': True}


def _declare_defaults(job: dict) -> None:
  """Copies runtime defaults into the spec so a bare PipelineSpec has them.

  KFP's ``create_run`` reads defaults from the spec's root inputs; Vertex reads
  ``runtimeConfig``. A parameter without a default stays required.
  """
  params = job['pipelineSpec']['root']['inputDefinitions']['parameters']
  values = job.setdefault('runtimeConfig', {}).setdefault('parameterValues', {})
  for name, value in values.items():
    params[name]['defaultValue'] = value
    params[name]['isOptional'] = True
  for name, spec in params.items():
    if 'defaultValue' in spec:
      values[name] = spec['defaultValue']


def write_pipeline_job(job: dict, output_path: str) -> str:
  """``.json``: the PipelineJob (Vertex, local_executor); ``.yaml``: the
  PipelineSpec alone, the form KFP's upload and ``kfp.Client`` take."""
  directory = os.path.dirname(os.path.abspath(output_path))
  os.makedirs(directory, exist_ok=True)
  with open(output_path, 'w', encoding='utf-8') as f:
    if output_path.endswith(('.yaml', '.yml')):
      yaml.safe_dump(job['pipelineSpec'], f, sort_keys=True)
    else:
      json.dump(job, f, indent=2, sort_keys=True)
  return output_path


def compile_pipeline(config: config_lib.PipelineConfig, *,
                     output_path: str,
                     image: Optional[str] = None,
                     pipeline_root: Optional[str] = None,
                     data_root: Optional[str] = None,
                     serving_dir: Optional[str] = None,
                     beam_pipeline_args: Optional[Sequence[str]] = None,
                     enable_cache: bool = True) -> str:
  """Writes the KFP v2 spec to ``output_path`` and returns the path.

  ``None`` means the default: the image ``tfx-generalize:<version>``, the root
  and serving folder from ``output`` when they are URLs, and the taxi sample
  baked into the image (or the folder of ``data.path``) as ``data_root``.
  """
  job = build_pipeline_job(
      config, image=image, pipeline_root=pipeline_root, data_root=data_root,
      serving_dir=serving_dir, beam_pipeline_args=beam_pipeline_args,
      enable_cache=enable_cache)
  return write_pipeline_job(job, output_path)
