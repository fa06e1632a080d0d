"""Runs a compiled Kubeflow Pipelines v2 spec on this machine, task by task.

This is a stand-in for KFP's driver and launcher, not for the TFX executors: it
reads the PipelineJob JSON (or PipelineSpec YAML) that ``kubeflow.runner``
writes, orders the DAG, builds for every container task the ``ExecutorInput``
KFP would hand it (resolved parameters, upstream output artifacts, fresh output
URIs under the pipeline root) and runs the task's *own* command line from the
spec in a subprocess: ``python -m tfx.orchestration.kubeflow.v2.container.
kubeflow_v2_run_executor --executor_class_path ... --json_serialized_invocation_args
{{$}} ...``.  What each task writes to its ``executor_output.json`` feeds the
next task, as the launcher's metadata update does on a cluster.

Resolver tasks (``LatestBlessedModelStrategy`` compiles to a ModelBlessing
query followed by a Model query) are answered from a small artifact registry
kept under the pipeline root, which plays the part of KFP's ML Metadata: every
artifact a successful task outputs is recorded, and a resolver returns the
newest LIVE artifact of this pipeline that matches its filter, or nothing (on a
first run there is no blessed model).

What it does not emulate: caching, retries, conditions (``trigger_policy``),
loops, exit handlers, importers and resource requests.  A spec that uses any of
them is refused rather than silently run differently.

Command line (see docs/kubeflow.md)::

  python -m kubeflow.local_executor build/pipeline.json \\
      --pipeline-root /tmp/kfp-root --param data_root=/data/taxi
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

# KFP's placeholder for the whole serialized ExecutorInput.
EXECUTOR_INPUT_PLACEHOLDER = '{{$}}'
_REGISTRY_FILE = '.kfp_local_artifacts.json'
# Only these ``name="..."`` placeholders occur in TFX's resolver filters.
_INPUT_METADATA_PLACEHOLDER = re.compile(
    r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")


class LocalRunError(RuntimeError):
  """A task failed, or the spec uses a feature this runner does not emulate."""


@dataclasses.dataclass
class TaskResult:
  """What one task produced: output artifacts as RuntimeArtifact dicts."""
  name: str
  kind: str  # 'container' or 'resolver'
  artifacts: Dict[str, List[dict]]
  parameters: Dict[str, Any]
  seconds: float
  log_path: Optional[str] = None


def load_pipeline_job(path: str) -> pipeline_spec_pb2.PipelineJob:
  """Parses a PipelineJob JSON, or wraps a PipelineSpec YAML, strictly."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  job = pipeline_spec_pb2.PipelineJob()
  if path.endswith(('.yaml', '.yml')):
    spec = yaml.safe_load(text)
    job.pipeline_spec.update(spec)
    # Validates the spec part strictly, as the JSON branch does.
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
  else:
    json_format.Parse(text, job)
  return job


def pipeline_spec_of(job: pipeline_spec_pb2.PipelineJob
                    ) -> pipeline_spec_pb2.PipelineSpec:
  spec = pipeline_spec_pb2.PipelineSpec()
  json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec), spec)
  return spec


# --------------------------------------------------------------------------
# Artifact registry: the part of ML Metadata that resolvers query.


class ArtifactRegistry:
  """Artifacts produced by earlier tasks and runs, in a JSON file."""

  def __init__(self, path: str):
    self._path = path
    self._records: List[dict] = []
    if os.path.exists(path):
      with open(path, encoding='utf-8') as f:
        self._records = json.load(f)

  def add(self, pipeline_name: str, artifact: dict) -> None:
    self._records.append({
        'pipeline': pipeline_name,
        'state': 'LIVE',
        'schema_title': schema_title(artifact['type']),
        'artifact': artifact,
    })
    os.makedirs(os.path.dirname(self._path), exist_ok=True)
    tmp = self._path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      json.dump(self._records, f, indent=1, sort_keys=True)
    os.replace(tmp, self._path)

  def query(self, pipeline_name: str, filter_text: str,
            inputs: Mapping[str, List[dict]]) -> List[dict]:
    """The newest artifact matching a ResolverSpec filter, as a 0/1 list."""
    predicates = [_parse_clause(c.strip(), inputs)
                  for c in filter_text.split(' AND ')]
    if any(p is None for p in predicates):
      return []  # A placeholder over an empty input: nothing can match.
    for record in reversed(self._records):
      if record['pipeline'] == pipeline_name and all(
          p(record) for p in predicates):
        return [record['artifact']]
    return []


def schema_title(artifact_type: Mapping[str, Any]) -> str:
  if 'schemaTitle' in artifact_type:
    return artifact_type['schemaTitle']
  return yaml.safe_load(artifact_type['instanceSchema'])['title']


def _parse_clause(clause: str, inputs: Mapping[str, List[dict]]
                 ) -> Optional[Callable[[dict], bool]]:
  """One ``AND`` term of the filters TFX's step builder writes."""
  m = re.fullmatch(r'schema_title="([^"]+)"', clause)
  if m:
    return lambda r, t=m.group(1): r['schema_title'] == t
  m = re.fullmatch(r'state=(\w+)', clause)
  if m:
    return lambda r, s=m.group(1): r['state'] == s
  m = re.fullmatch(r'metadata\.(\w+)\.number_value=(-?[\d.]+)', clause)
  if m:
    key, value = m.group(1), float(m.group(2))
    return lambda r: _as_float(r['artifact'].get('metadata', {}).get(key)) == value
  m = re.fullmatch(r'name="(.*)"', clause)
  if m:
    wanted = m.group(1)
    for ph in _INPUT_METADATA_PLACEHOLDER.finditer(m.group(1)):
      arts = inputs.get(ph.group(1)) or []
      if not arts:
        return None
      value = arts[0].get('metadata', {}).get(ph.group(2))
      if value is None:
        return None
      wanted = wanted.replace(ph.group(0), str(value))
    return lambda r: r['artifact'].get('name') == wanted
  raise LocalRunError(f'resolver filter term not supported: {clause!r}')


def _as_float(value: Any) -> Optional[float]:
  try:
    return float(value)
  except (TypeError, ValueError):
    return None


# --------------------------------------------------------------------------
# The runner.


def _upstream(task: pipeline_spec_pb2.PipelineTaskSpec) -> set:
  d = set(task.dependent_tasks)
  for spec in task.inputs.artifacts.values():
    if spec.HasField('task_output_artifact'):
      d.add(spec.task_output_artifact.producer_task)
  for spec in task.inputs.parameters.values():
    if spec.HasField('task_output_parameter'):
      d.add(spec.task_output_parameter.producer_task)
  return d


def _topological_order(tasks: Mapping[str, pipeline_spec_pb2.PipelineTaskSpec]
                      ) -> List[str]:
  """Tasks in dependency order; ties broken by name for reproducible runs."""
  deps = {}
  for name, task in tasks.items():
    d = _upstream(task)
    unknown = d - set(tasks)
    if unknown:
      raise LocalRunError(f'task {name} depends on unknown tasks {sorted(unknown)}')
    deps[name] = d
  order, done = [], set()
  while len(order) < len(tasks):
    ready = sorted(n for n in tasks if n not in done and deps[n] <= done)
    if not ready:
      raise LocalRunError('the pipeline DAG has a cycle among '
                          f'{sorted(set(tasks) - done)}')
    order.append(ready[0])
    done.add(ready[0])
  return order


def _typed(value: Any, spec: pipeline_spec_pb2.ComponentInputsSpec.ParameterSpec,
           name: str) -> Any:
  kind = pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(
      spec.parameter_type)
  if kind == 'NUMBER_INTEGER':
    if isinstance(value, str):
      value = float(value)
    if float(value) != int(float(value)):
      raise LocalRunError(f'parameter {name}: expected an integer, got {value!r}')
    return int(float(value))
  if kind == 'NUMBER_DOUBLE':
    return float(value)
  if kind in ('STRUCT', 'LIST') and isinstance(value, str):
    return json.loads(value)
  if kind == 'STRING':
    if not isinstance(value, str):
      raise LocalRunError(f'parameter {name}: expected a string, got {value!r}')
    return value
  if kind == 'BOOLEAN':
    if isinstance(value, str):
      value = value.lower() in ('1', 'true', 'yes')
    return bool(value)
  return value


class LocalPipelineRunner:
  """Runs every task of a compiled spec in dependency order."""

  def __init__(self, job: pipeline_spec_pb2.PipelineJob, *,
               pipeline_root: Optional[str] = None,
               parameter_values: Optional[Mapping[str, Any]] = None,
               python: str = sys.executable,
               env: Optional[Mapping[str, str]] = None,
               run_id: Optional[str] = None,
               task_timeout: Optional[float] = None,
               log: Callable[[str], None] = print):
    self._job = job
    self._spec = pipeline_spec_of(job)
    if self._spec.schema_version != '2.1.0':
      raise LocalRunError(
          f'schema version {self._spec.schema_version!r}: only 2.1.0 specs '
          '(parameter_values) are supported; compile with kubeflow.runner')
    self.pipeline_name = self._spec.pipeline_info.name
    self.pipeline_root = (pipeline_root or
                          job.runtime_config.gcs_output_directory)
    if not self.pipeline_root:
      raise LocalRunError('no pipeline root: pass pipeline_root')
    self.run_id = run_id or datetime.datetime.now().strftime(
        'local-%Y%m%d-%H%M%S-%f')
    self._python = python
    self._env = dict(os.environ if env is None else env)
    self._timeout = task_timeout
    self._log = log
    self._registry = ArtifactRegistry(
        os.path.join(self.pipeline_root, _REGISTRY_FILE))
    self.parameters = self._resolve_root_parameters(parameter_values or {})
    self._deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
    json_format.ParseDict(
        json_format.MessageToDict(self._spec.deployment_spec), self._deployment)
    self.results: Dict[str, TaskResult] = {}

  # -- parameters ----------------------------------------------------------

  def _resolve_root_parameters(self, overrides: Mapping[str, Any]
                              ) -> Dict[str, Any]:
    defs = self._spec.root.input_definitions.parameters
    unknown = set(overrides) - set(defs)
    if unknown:
      raise LocalRunError(f'unknown pipeline parameters {sorted(unknown)}; '
                          f'the spec declares {sorted(defs)}')
    runtime = json_format.MessageToDict(
        self._job.runtime_config).get('parameterValues', {})
    values = {}
    for name, spec in defs.items():
      if name in overrides:
        value = overrides[name]
      elif name in runtime:
        value = runtime[name]
      elif spec.HasField('default_value'):
        value = json_format.MessageToDict(spec.default_value)
      elif spec.is_optional:
        continue
      else:
        raise LocalRunError(f'pipeline parameter {name} has no value')
      values[name] = _typed(value, spec, name)
    return values

  def _task_parameters(self, name: str, task: pipeline_spec_pb2.PipelineTaskSpec
                      ) -> Dict[str, Any]:
    values = {}
    for key, spec in task.inputs.parameters.items():
      which = spec.WhichOneof('kind')
      if which == 'runtime_value':
        rv = spec.runtime_value
        if not rv.HasField('constant'):
          raise LocalRunError(f'{name}.{key}: legacy constant_value parameters '
                              'are not supported')
        values[key] = json_format.MessageToDict(rv.constant)
      elif which == 'component_input_parameter':
        values[key] = self.parameters[spec.component_input_parameter]
      elif which == 'task_output_parameter':
        producer = spec.task_output_parameter.producer_task
        values[key] = self.results[producer].parameters[
            spec.task_output_parameter.output_parameter_key]
      else:
        raise LocalRunError(f'{name}.{key}: parameter source {which} is not '
                            'supported')
    return values

  def _task_artifacts(self, name: str, task: pipeline_spec_pb2.PipelineTaskSpec,
                      component: pipeline_spec_pb2.ComponentSpec
                     ) -> Dict[str, List[dict]]:
    artifacts = {}
    for key, spec in task.inputs.artifacts.items():
      if not spec.HasField('task_output_artifact'):
        raise LocalRunError(f'{name}.{key}: only task output artifacts are '
                            'supported as inputs')
      source = spec.task_output_artifact
      # A resolver that found nothing hands downstream an empty list.
      artifacts[key] = self.results[source.producer_task].artifacts.get(
          source.output_artifact_key, [])
    missing = [k for k, d in component.input_definitions.artifacts.items()
               if k not in artifacts and not d.is_optional]
    if missing:
      raise LocalRunError(f'{name}: no source for input artifacts {missing}')
    return artifacts

  # -- tasks ---------------------------------------------------------------

  def run(self, only: Optional[Sequence[str]] = None
         ) -> Dict[str, TaskResult]:
    """Runs every task, or ``only`` these (their upstream tasks must be
    among them or have run in this runner already)."""
    if self._spec.root.WhichOneof('implementation') != 'dag':
      raise LocalRunError('the root component is not a DAG')
    tasks = self._spec.root.dag.tasks
    order = _topological_order(tasks)
    if only is not None:
      unknown = set(only) - set(tasks)
      if unknown:
        raise LocalRunError(f'no such tasks: {sorted(unknown)}')
      order = [n for n in order if n in only]
    for name in order:
      task = tasks[name]
      missing = [d for d in _upstream(task)
                 if d not in self.results and d not in order]
      if missing:
        raise LocalRunError(f'{name}: upstream tasks {missing} have not run')
      if task.HasField('trigger_policy') and task.trigger_policy.condition:
        raise LocalRunError(f'{name}: conditions are not emulated')
      if task.HasField('artifact_iterator') or task.HasField(
          'parameter_iterator'):
        raise LocalRunError(f'{name}: loops are not emulated')
      component = self._spec.components[task.component_ref.name]
      executor = self._deployment.executors[component.executor_label]
      kind = executor.WhichOneof('spec')
      start = time.monotonic()
      if kind == 'resolver':
        result = self._run_resolver(name, task, component, executor.resolver)
      elif kind == 'container':
        result = self._run_container(name, task, component, executor.container)
      else:
        raise LocalRunError(f'{name}: executor kind {kind} is not emulated')
      result.seconds = time.monotonic() - start
      self.results[name] = result
      found = {k: len(v) for k, v in result.artifacts.items()}
      self._log(f'[local-kfp] {name}: {kind} done in {result.seconds:.1f}s '
                f'artifacts={found}')
    return self.results

  def _run_resolver(self, name, task, component, resolver) -> TaskResult:
    inputs = self._task_artifacts(name, task, component)
    outputs = {}
    for key, query in resolver.output_artifact_queries.items():
      outputs[key] = self._registry.query(self.pipeline_name, query.filter,
                                          inputs)
    return TaskResult(name, 'resolver', outputs, {}, 0.0)

  def _task_root(self, name: str) -> str:
    return os.path.join(self.pipeline_root, self.pipeline_name, self.run_id,
                        name)

  def _executor_input(self, name, task, component) -> dict:
    """The ExecutorInput KFP's driver builds for a container task."""
    task_root = self._task_root(name)
    parameters = self._task_parameters(name, task)
    inputs = self._task_artifacts(name, task, component)
    outputs = {}
    for key, spec in component.output_definitions.artifacts.items():
      artifact = {
          'name': f'{self.pipeline_name}/{self.run_id}/{name}/{key}',
          'type': json_format.MessageToDict(spec.artifact_type),
          'uri': os.path.join(task_root, key),
      }
      if spec.HasField('metadata'):
        artifact['metadata'] = json_format.MessageToDict(spec.metadata)
      outputs[key] = {'artifacts': [artifact]}
    out_params = {
        key: {'outputFile': os.path.join(task_root, 'parameters', key)}
        for key in component.output_definitions.parameters}
    executor_input = {
        'inputs': {
            'parameterValues': parameters,
            'artifacts': {k: {'artifacts': v} for k, v in inputs.items()},
        },
        'outputs': {
            'artifacts': outputs,
            'parameters': out_params,
            'outputFile': os.path.join(task_root, 'executor_output.json'),
        },
    }
    # Strict round trip: what we hand over is a valid ExecutorInput.
    json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())
    return executor_input

  def _argv(self, command: Sequence[str], args: Sequence[str],
            executor_input: str) -> List[str]:
    argv = []
    for item in list(command) + list(args):
      if item == EXECUTOR_INPUT_PLACEHOLDER:
        item = executor_input
      elif '{{$' in item:
        raise LocalRunError(f'placeholder not emulated: {item!r}')
      argv.append(item)
    # The image's ``python`` is its venv interpreter; here it is ours.
    if argv and argv[0] == 'python':
      argv[0] = self._python
    return argv

  def _run_container(self, name, task, component, container) -> TaskResult:
    executor_input = self._executor_input(name, task, component)
    task_root = self._task_root(name)
    os.makedirs(task_root, exist_ok=True)
    log_path = os.path.join(task_root, 'local_run.log')
    serialized = json.dumps(executor_input, sort_keys=True)
    # Kept for inspection: what the task was handed, as on a cluster's logs.
    with open(os.path.join(task_root, 'executor_input.json'), 'w',
              encoding='utf-8') as f:
      f.write(serialized)
    steps = []
    if container.HasField('lifecycle') and container.lifecycle.HasField(
        'pre_cache_check'):
      hook = container.lifecycle.pre_cache_check
      steps.append(('driver', self._argv(hook.command, hook.args, serialized)))
    steps.append(('executor', self._argv(container.command, container.args,
                                         serialized)))
    with open(log_path, 'w', encoding='utf-8') as log_file:
      for step, argv in steps:
        log_file.write(f'### {step}: {argv[:4]} ...\n')
        log_file.flush()
        # cwd is the task directory, so nothing imports from a source tree.
        proc = subprocess.run(argv, cwd=task_root, env=self._env,
                              stdout=log_file, stderr=subprocess.STDOUT,
                              timeout=self._timeout, check=False)
        if proc.returncode != 0:
          log_file.flush()
          with open(log_path, encoding='utf-8', errors='replace') as f:
            tail = ''.join(f.readlines()[-40:])
          raise LocalRunError(f'task {name} ({step}) exited with '
                              f'{proc.returncode}; log {log_path}:\n{tail}')
    artifacts = {k: v['artifacts'] for k, v in
                 executor_input['outputs']['artifacts'].items()}
    parameters = {}
    output_file = executor_input['outputs']['outputFile']
    if os.path.exists(output_file):
      executor_output = pipeline_spec_pb2.ExecutorOutput()
      with open(output_file, encoding='utf-8') as f:
        json_format.Parse(f.read(), executor_output)
      reported = json_format.MessageToDict(executor_output)
      # The launcher records what the executor reports (metadata, uri).
      for key, artifact_list in reported.get('artifacts', {}).items():
        if key not in artifacts:
          raise LocalRunError(f'task {name} reported unknown output {key}')
        for mine, theirs in zip(artifacts[key], artifact_list['artifacts']):
          mine['metadata'] = theirs.get('metadata', {})
          mine['uri'] = theirs.get('uri') or mine['uri']
      parameters.update(reported.get('parameterValues', {}))
    for key, spec in executor_input['outputs']['parameters'].items():
      if key not in parameters and os.path.exists(spec['outputFile']):
        with open(spec['outputFile'], encoding='utf-8') as f:
          parameters[key] = f.read()
    for artifact_list in artifacts.values():
      for artifact in artifact_list:
        self._registry.add(self.pipeline_name, artifact)
    return TaskResult(name, 'container', artifacts, parameters, 0.0, log_path)


def run_pipeline(spec_path: str, **kwargs) -> Dict[str, TaskResult]:
  """Loads a compiled spec and runs it; see :class:`LocalPipelineRunner`."""
  runner = LocalPipelineRunner(load_pipeline_job(spec_path), **kwargs)
  return runner.run()


def _parse_param(text: str):
  if '=' not in text:
    raise argparse.ArgumentTypeError(f'{text!r}: expected name=value')
  # The value stays a string: the spec's declared type decides how it parses.
  return tuple(text.split('=', 1))


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m kubeflow.local_executor',
      description='Run a compiled KFP v2 pipeline spec locally, task by task.')
  parser.add_argument('spec', help='PipelineJob JSON or PipelineSpec YAML')
  parser.add_argument('--pipeline-root', help='overrides the compiled root '
                      '(a local directory, or a bucket you can write to)')
  parser.add_argument('--param', action='append', type=_parse_param,
                      default=[], metavar='NAME=VALUE',
                      help='a pipeline runtime parameter (repeatable)')
  parser.add_argument('--run-id')
  parser.add_argument('--python', default=sys.executable,
                      help='interpreter replacing the image\'s "python"')
  args = parser.parse_args(argv)
  results = run_pipeline(args.spec, pipeline_root=args.pipeline_root,
                         parameter_values=dict(args.param),
                         python=args.python, run_id=args.run_id)
  for name, result in results.items():
    uris = {k: [a['uri'] for a in v] for k, v in result.artifacts.items()}
    print(f'{name}\t{result.seconds:.1f}s\t{json.dumps(uris)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
