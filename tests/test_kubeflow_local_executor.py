"""kubeflow.local_executor: the KFP driver/launcher stand-in.

The fast tests run hand-written specs whose container tasks are small Python
programs, so they check the machinery itself (executor inputs, artifact
hand-over, parameters, resolver queries, failures) in seconds. The e2e test
compiles the real pipeline and runs every task's own command line with the
interpreter of the image's environment (the Dockerfile's install steps
replayed), on a 2,000-row sample.
"""

import json
import os
import sys
import tempfile

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kubeflow import dockerfile
from kubeflow import local_executor as lx

# A task body: reads the ExecutorInput, writes its outputs and, like TFX's
# entrypoint, an ExecutorOutput with the artifacts' metadata.
_TASK = r'''
import json, os, sys
ex = json.loads(sys.argv[1])
inputs = ex['inputs']
seen = {k: [a['uri'] for a in v.get('artifacts', [])]
        for k, v in inputs.get('artifacts', {}).items()}
meta = {k: [a.get('metadata', {}) for a in v.get('artifacts', [])]
        for k, v in inputs.get('artifacts', {}).items()}
report = {'params': inputs.get('parameterValues', {}), 'seen': seen,
          'meta': meta}
out = {'artifacts': {}}
for key, lst in ex['outputs']['artifacts'].items():
  art = lst['artifacts'][0]
  os.makedirs(art['uri'], exist_ok=True)
  with open(os.path.join(art['uri'], 'report.json'), 'w') as f:
    json.dump(report, f)
  metadata = json.loads(os.environ.get('TASK_METADATA', '{}')).get(key, {})
  for k, v in list(metadata.items()):
    if v == '@model_name':  # The gate names the candidate it blessed.
      metadata[k] = inputs['artifacts']['model']['artifacts'][0]['name']
  out['artifacts'][key] = {'artifacts': [dict(art, metadata=metadata)]}
os.makedirs(os.path.dirname(ex['outputs']['outputFile']), exist_ok=True)
with open(ex['outputs']['outputFile'], 'w') as f:
  json.dump(out, f)
'''

MODEL_TYPE = {'schemaTitle': 'tfx.Model'}
BLESSING_TYPE = {'schemaTitle': 'tfx.ModelBlessing'}
BLESSING_FILTER = ('schema_title="tfx.ModelBlessing" AND state=LIVE AND '
                   'metadata.blessed.number_value=1')
MODEL_FILTER = ('schema_title="tfx.Model" AND state=LIVE AND '
                'name="{{$.inputs.artifacts[\'input\'].metadata'
                '[\'current_model_id\']}}"')


def _container(name, *, inputs=None, outputs=None, params=None,
               command=('python', '-c', _TASK), args=('{{$}}',)):
  component = {'executorLabel': f'{name}_executor'}
  if inputs:
    component['inputDefinitions'] = {'artifacts': {
        k: {'artifactType': t} for k, (t, _) in inputs.items()}}
  if params:
    component.setdefault('inputDefinitions', {})['parameters'] = {
        k: {'parameterType': t} for k, (t, _) in params.items()}
  if outputs:
    component['outputDefinitions'] = {'artifacts': {
        k: {'artifactType': t} for k, t in outputs.items()}}
  task = {'taskInfo': {'name': name}, 'componentRef': {'name': name},
          'inputs': {}}
  if inputs:
    task['inputs']['artifacts'] = {
        k: {'taskOutputArtifact': {'producerTask': p, 'outputArtifactKey': o}}
        for k, (_, (p, o)) in inputs.items()}
    task['dependentTasks'] = sorted({p for _, (p, _) in inputs.values()})
  if params:
    task['inputs']['parameters'] = {k: v for k, (_, v) in params.items()}
  executor = {'container': {'image': 'unused:0', 'command': list(command),
                            'args': list(args)}}
  return name, component, task, executor


def _resolver(name, queries, outputs, inputs=None):
  component = {'executorLabel': f'{name}_executor', 'outputDefinitions': {
      'artifacts': {k: {'artifactType': t} for k, t in outputs.items()}}}
  task = {'taskInfo': {'name': name}, 'componentRef': {'name': name}}
  if inputs:
    component['inputDefinitions'] = {'artifacts': {
        k: {'artifactType': t} for k, (t, _) in inputs.items()}}
    task['inputs'] = {'artifacts': {
        k: {'taskOutputArtifact': {'producerTask': p, 'outputArtifactKey': o}}
        for k, (_, (p, o)) in inputs.items()}}
  executor = {'resolver': {'outputArtifactQueries': {
      k: {'filter': f} for k, f in queries.items()}}}
  return name, component, task, executor


def _job(nodes, root_params=None, defaults=None):
  spec = {'pipelineInfo': {'name': 'toy'}, 'schemaVersion': '2.1.0',
          'sdkVersion': 'test', 'components': {},
          'deploymentSpec': {'executors': {}},
          'root': {'dag': {'tasks': {}}}}
  for name, component, task, executor in nodes:
    spec['components'][name] = component
    spec['root']['dag']['tasks'][name] = task
    spec['deploymentSpec']['executors'][f'{name}_executor'] = executor
  if root_params:
    spec['root']['inputDefinitions'] = {'parameters': root_params}
  job = pipeline_spec_pb2.PipelineJob()
  job.pipeline_spec.update(spec)
  if defaults:
    for name, value in defaults.items():
      job.runtime_config.parameter_values[name].number_value = value
  return job


def _report(result, key):
  with open(os.path.join(result.artifacts[key][0]['uri'], 'report.json'),
            encoding='utf-8') as f:
    return json.load(f)


def _run(job, root, **kwargs):
  kwargs.setdefault('log', lambda _: None)
  return lx.LocalPipelineRunner(job, pipeline_root=str(root), **kwargs).run()


def _toy_pipeline():
  return _job([
      _container('consumer',
                 inputs={'examples': ({'schemaTitle': 'tfx.Examples'},
                                      ('producer', 'examples'))},
                 outputs={'out': {'schemaTitle': 'tfx.Schema'}},
                 params={'steps': ('NUMBER_INTEGER',
                                   {'componentInputParameter': 'steps'}),
                         'const': ('STRING',
                                   {'runtimeValue': {'constant': 'abc'}})}),
      _container('producer',
                 outputs={'examples': {'schemaTitle': 'tfx.Examples'}}),
  ], root_params={'steps': {'parameterType': 'NUMBER_INTEGER'}},
     defaults={'steps': 5})


def test_tasks_get_kfp_inputs_and_upstream_outputs(tmp_path):
  env = dict(os.environ, TASK_METADATA=json.dumps(
      {'examples': {'split_names': '["train"]'}}))
  results = _run(_toy_pipeline(), tmp_path, parameter_values={'steps': '7'},
                 env=env, run_id='r1')
  assert list(results) == ['producer', 'consumer']  # Dependency order.
  produced = results['producer'].artifacts['examples'][0]
  assert produced['uri'] == str(tmp_path / 'toy' / 'r1' / 'producer' /
                                'examples')
  report = _report(results['consumer'], 'out')
  assert report['seen'] == {'examples': [produced['uri']]}
  # What the producer reported reaches the consumer, as MLMD would carry it.
  assert report['meta']['examples'] == [{'split_names': '["train"]'}]
  assert report['params'] == {'steps': 7, 'const': 'abc'}
  with open(tmp_path / 'toy' / 'r1' / 'consumer' / 'executor_input.json',
            encoding='utf-8') as f:
    json_format.Parse(f.read(), pipeline_spec_pb2.ExecutorInput())


def test_compiled_defaults_apply_without_overrides(tmp_path):
  results = _run(_toy_pipeline(), tmp_path)
  assert _report(results['consumer'], 'out')['params']['steps'] == 5


def test_unknown_or_mistyped_parameters_are_refused(tmp_path):
  with pytest.raises(lx.LocalRunError, match='unknown pipeline parameters'):
    _run(_toy_pipeline(), tmp_path, parameter_values={'step': 3})
  with pytest.raises(lx.LocalRunError, match='expected an integer'):
    _run(_toy_pipeline(), tmp_path, parameter_values={'steps': 2.5})


def test_a_failing_task_stops_the_run_with_its_log(tmp_path):
  job = _job([_container('boom', command=(
      'python', '-c', 'import sys; print("went wrong"); sys.exit(3)'))])
  with pytest.raises(lx.LocalRunError, match=r'(?s)boom.*exited with 3.*'
                     r'went wrong'):
    _run(job, tmp_path)


def test_placeholders_it_cannot_fill_are_refused(tmp_path):
  job = _job([_container('t', args=("{{$.inputs.parameters['x']}}",))])
  with pytest.raises(lx.LocalRunError, match='placeholder not emulated'):
    _run(job, tmp_path)


def test_cycles_are_refused(tmp_path):
  a = _container('a', inputs={'x': (MODEL_TYPE, ('b', 'y'))},
                 outputs={'y': MODEL_TYPE})
  b = _container('b', inputs={'x': (MODEL_TYPE, ('a', 'y'))},
                 outputs={'y': MODEL_TYPE})
  with pytest.raises(lx.LocalRunError, match='cycle'):
    _run(_job([a, b]), tmp_path)


def _blessing_pipeline():
  """trainer -> gate(baseline from the two-phase resolver) -> a blessing."""
  return _job([
      _resolver('latest-model-blessing-resolver',
                {'model_blessing': BLESSING_FILTER},
                {'model_blessing': BLESSING_TYPE}),
      _resolver('latest-model-resolver', {'model': MODEL_FILTER},
                {'model': MODEL_TYPE},
                inputs={'input': (BLESSING_TYPE,
                                  ('latest-model-blessing-resolver',
                                   'model_blessing'))}),
      _container('trainer', outputs={'model': MODEL_TYPE}),
      _container('gate',
                 inputs={'model': (MODEL_TYPE, ('trainer', 'model')),
                         'baseline_model': (MODEL_TYPE,
                                            ('latest-model-resolver',
                                             'model'))},
                 outputs={'blessing': BLESSING_TYPE}),
  ])


def test_latest_blessed_model_resolver_across_runs(tmp_path):
  env = dict(os.environ, TASK_METADATA=json.dumps({'blessing': {
      'blessed': 1, 'current_model_id': '@model_name'}}))
  first = _run(_blessing_pipeline(), tmp_path, env=env, run_id='r1')
  # A first run has no blessed model: the resolver yields nothing.
  assert first['latest-model-blessing-resolver'].artifacts == {
      'model_blessing': []}
  assert first['latest-model-resolver'].artifacts == {'model': []}
  assert _report(first['gate'], 'blessing')['seen']['baseline_model'] == []

  second = _run(_blessing_pipeline(), tmp_path, env=env, run_id='r2')
  baseline = _report(second['gate'], 'blessing')['seen']['baseline_model']
  assert baseline == [first['trainer'].artifacts['model'][0]['uri']]
  assert second['latest-model-resolver'].artifacts['model'][0]['name'] == (
      first['trainer'].artifacts['model'][0]['name'])


def test_a_not_blessed_model_never_becomes_the_baseline(tmp_path):
  env = dict(os.environ, TASK_METADATA=json.dumps({'blessing': {
      'blessed': 0, 'current_model_id': '@model_name'}}))
  _run(_blessing_pipeline(), tmp_path, env=env, run_id='r1')
  second = _run(_blessing_pipeline(), tmp_path, env=env, run_id='r2')
  assert second['latest-model-resolver'].artifacts == {'model': []}


def test_resolver_filters_it_does_not_know_are_refused(tmp_path):
  job = _job([_resolver('r', {'m': 'schema_title="tfx.Model" AND '
                              'create_time_since_epoch>0'},
                        {'m': MODEL_TYPE})])
  with pytest.raises(lx.LocalRunError, match='not supported'):
    _run(job, tmp_path)


def test_yaml_pipeline_spec_is_accepted(tmp_path):
  import yaml
  job = _toy_pipeline()
  spec = json_format.MessageToDict(job.pipeline_spec)
  spec['root']['inputDefinitions']['parameters']['steps'].update(
      defaultValue=9, isOptional=True)
  path = tmp_path / 'pipeline.yaml'
  path.write_text(yaml.safe_dump(spec))
  results = lx.run_pipeline(str(path), pipeline_root=str(tmp_path / 'root'),
                            log=lambda _: None)
  assert _report(results['consumer'], 'out')['params']['steps'] == 9
