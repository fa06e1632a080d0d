"""kubeflow.local_executor: the KFP driver/launcher stand-in.

The fast tests run hand-written specs whose container tasks are small Python
programs, so they check the machinery itself (executor inputs, artifact
hand-over, parameters, resolver queries, failures) in seconds. The e2e test
compiles the real pipeline and runs every task's own command line with the
interpreter of the image's environment (the Dockerfile's install steps
replayed), on a 2,000-row sample; then so for a multiclass and a regression
label (marked extended: ``make test-all``).
"""

import json
import os
import re
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

  # The resolvers alone, as a later run's first tasks: the newest blessing.
  resolvers = lx.LocalPipelineRunner(
      _blessing_pipeline(), pipeline_root=str(tmp_path),
      log=lambda _: None).run(only=['latest-model-blessing-resolver',
                                    'latest-model-resolver'])
  assert list(resolvers) == ['latest-model-blessing-resolver',
                             'latest-model-resolver']
  assert resolvers['latest-model-resolver'].artifacts['model'][0]['uri'] == (
      second['trainer'].artifacts['model'][0]['uri'])


def test_only_refuses_tasks_whose_inputs_never_ran(tmp_path):
  runner = lx.LocalPipelineRunner(_toy_pipeline(), pipeline_root=str(tmp_path),
                                  log=lambda _: None)
  with pytest.raises(lx.LocalRunError, match='have not run'):
    runner.run(only=['consumer'])


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


# --------------------------------------------------------------------------
# The real pipeline, compiled, then run task by task.

SAMPLE_ROWS = 2000
# Small and quick; the thresholds are relaxed through the gate_config
# parameter (that the value reaches the gate is part of what is tested).
E2E_OVERRIDES = ['model.epochs=2', 'model.ensemble_size=1', 'model.batch_size=64',
                 'model.train_eval_sample=256', 'gate.train_sample_size=300']
E2E_GATE = {'min_auc': 0.5, 'min_accuracy_skill': -100.0,
            'min_log_loss_skill': -100.0, 'min_pr_auc_skill': -100.0,
            'max_gap': {'accuracy': 1.0, 'auc': 1.0, 'log_loss': 5.0},
            'train_sample_size': 300, 'permissive': True}
E2E_STEPS = 24
RESOLVERS = ['latest_blessed_model-model-blessing-resolver',
             'latest_blessed_model-model-resolver']


def _sample(directory, rows):
  from core import config as config_lib
  os.makedirs(directory)
  with open(config_lib.taxi_sample_path(), encoding='utf-8') as src, open(
      os.path.join(directory, 'data.csv'), 'w', encoding='utf-8') as dst:
    for i, line in enumerate(src):
      if i > rows:
        break
      dst.write(line)


def _executor_input(result):
  with open(os.path.join(os.path.dirname(result.log_path),
                         'executor_input.json'), encoding='utf-8') as f:
    return json.load(f)


def _compiled_run(tmp_path, data, overrides, gate):
  """Compiles the real pipeline with ``overrides`` and runs it task by task
  on the CSV folder ``data``, the gate judging by ``gate`` (a run-time
  parameter)."""
  from kubeflow import runner
  from core import config as config_lib

  image_python = dockerfile.cached_install(
      os.path.join(tempfile.gettempdir(), 'tfx-generalize-tests'),
      extra_env={'UV_LINK_MODE': 'hardlink', 'UV_COMPILE_BYTECODE': '0'})
  serving = str(tmp_path / 'serving')
  # Compiled against locations that do not exist here: only the runtime
  # parameters can make this run work.
  spec_path = runner.compile_pipeline(
      config_lib.load_config(overrides=overrides),
      output_path=str(tmp_path / 'pipeline.json'), image='tfx-generalize:e2e',
      pipeline_root='gs://not-used/root', data_root='gs://not-used/data',
      serving_dir='gs://not-used/serving')
  env = {k: v for k, v in os.environ.items() if not k.startswith('PYTHON')}
  env.update(TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')
  job = lx.load_pipeline_job(spec_path)
  pipeline_root = str(tmp_path / 'root')
  results = lx.LocalPipelineRunner(
      job, pipeline_root=pipeline_root, python=image_python, env=env,
      task_timeout=1200, parameter_values={
          'data_root': data, 'serving_dir': serving,
          'train_args': json.dumps({'splits': ['train'],
                                    'num_steps': E2E_STEPS}),
          'gate_config': json.dumps(gate)}).run()
  with open(spec_path, encoding='utf-8') as f:
    spec = json.load(f)['pipelineSpec']
  return {'results': results, 'spec': spec, 'job': job, 'env': env,
          'data': data, 'serving': serving, 'pipeline_root': pipeline_root}


@pytest.fixture(scope='module')
def e2e(tmp_path_factory):
  """Compiles the real pipeline and runs it once; the tests read the run."""
  tmp_path = tmp_path_factory.mktemp('kfp-e2e')
  data = str(tmp_path / 'data')
  _sample(data, SAMPLE_ROWS)
  return _compiled_run(tmp_path, data, E2E_OVERRIDES, E2E_GATE)


@pytest.mark.e2e
def test_compiled_pipeline_runs_task_by_task_and_pushes(e2e):
  results, spec = e2e['results'], e2e['spec']
  tasks = spec['root']['dag']['tasks']
  assert set(results) == set(tasks)

  # First run: no blessed model yet, the gate gets an empty baseline.
  assert results[RESOLVERS[0]].artifacts == {'model_blessing': []}
  assert results[RESOLVERS[1]].artifacts == {'model': []}
  gate_input = _executor_input(results['gate'])
  assert gate_input['inputs']['artifacts']['baseline_model'].get(
      'artifacts', []) == []

  # Every artifact a task was handed is the one its producer wrote.
  for name, task in tasks.items():
    if results[name].kind != 'container':
      continue
    handed = _executor_input(results[name])['inputs']['artifacts']
    for key, source in task['inputs'].get('artifacts', {}).items():
      producer = source['taskOutputArtifact']
      produced = results[producer['producerTask']].artifacts[
          producer['outputArtifactKey']]
      assert [a['uri'] for a in handed.get(key, {}).get('artifacts', [])] == [
          a['uri'] for a in produced], (name, key)
      for artifact in produced:
        assert os.path.isdir(artifact['uri']), (name, key)

  examples = results['example_gen'].artifacts['examples'][0]
  assert json.loads(examples['metadata']['split_names']) == [
      'train', 'eval', 'test']
  assert _executor_input(results['example_gen'])['inputs']['parameterValues'][
      'input_base'] == e2e['data']

  # The step budget reached the Trainer's executor (its startup log).
  with open(results['trainer'].log_path, encoding='utf-8') as f:
    trainer_log = f.read()
  assert re.search(r'num_steps\W+%d\b' % E2E_STEPS, trainer_log)

  # The gate judged with the thresholds passed at run time, and blessed.
  blessing = results['gate'].artifacts['blessing'][0]
  assert blessing['metadata']['blessed'] == 1
  assert os.path.exists(os.path.join(blessing['uri'], 'BLESSED'))
  with open(os.path.join(blessing['uri'], 'gate.json'), encoding='utf-8') as f:
    checks = {(c['kind'], c['metric']): c for c in json.load(f)['checks']}
  assert checks[('quality', 'auc')]['threshold'] == E2E_GATE['min_auc']
  assert checks[('gap', 'auc')]['threshold'] == E2E_GATE['max_gap']['auc']

  # The blessed model was pushed where serving_dir said.
  pushed = results['pusher'].artifacts['pushed_model'][0]
  assert pushed['metadata']['pushed'] == 1
  destination = pushed['metadata']['pushed_destination']
  assert destination.startswith(e2e['serving'])
  assert os.path.isfile(os.path.join(destination, 'saved_model.pb'))


@pytest.mark.e2e
def test_next_run_resolves_this_runs_blessed_model(e2e):
  # KFP's model resolver matches the Model whose artifact *name* the blessing
  # records in current_model_id: TFX's entrypoint rewrites the integer id into
  # that name only for Evaluator executors, which the gate's extends.
  later = lx.LocalPipelineRunner(e2e['job'], pipeline_root=e2e['pipeline_root'],
                                 env=e2e['env']).run(only=RESOLVERS)
  found = later[RESOLVERS[1]].artifacts['model']
  assert [a['uri'] for a in found] == [
      e2e['results']['trainer'].artifacts['model'][0]['uri']]


# Per task, a gate that any trained model passes: what is under test is
# that the task reaches every container and the pushed model is the task's.
TASK_GATES = {
    'multiclass': {'min_accuracy_skill': -100.0, 'min_log_loss_skill': -100.0,
                   'max_gap': {'accuracy': 1.0, 'macro_f1': 1.0,
                               'log_loss': 5.0}},
    'regression': {'min_r2_skill': -100.0, 'rmse_margin': -100.0,
                   'max_gap': {'rmse': 5.0, 'mae': 5.0}},
}


@pytest.mark.e2e
@pytest.mark.parametrize('shape', sorted(TASK_GATES))
def test_compiled_pipeline_runs_every_task(tmp_path, shape):
  import task_data
  from core import config as config_lib
  from core import tasks

  data = tmp_path / 'data'
  data.mkdir()
  writer, label, task = task_data.SHAPES[shape]
  writer(data / 'data.csv', n=SAMPLE_ROWS)
  overrides = [*E2E_OVERRIDES, f'task={task}', f'data.label={label}',
               'data.features={numeric: [x0, x1], categorical: [colour]}']
  gate = {**TASK_GATES[shape], 'train_sample_size': 300, 'permissive': True}
  results = _compiled_run(tmp_path, str(data), overrides, gate)['results']
  blessing = results['gate'].artifacts['blessing'][0]
  with open(os.path.join(blessing['uri'], 'gate.json'), encoding='utf-8') as f:
    judged = json.load(f)
  assert judged['task'] == task and blessing['metadata']['blessed'] == 1, (
      judged['reason'])
  assert {c['metric'] for c in judged['checks'] if c['kind'] == 'gap'} == set(
      TASK_GATES[shape]['max_gap'])
  # The Pusher checked the task's serving contract before publishing.
  pushed = results['pusher'].artifacts['pushed_model'][0]
  assert pushed['metadata']['pushed'] == 1
  recorded, label_name, _ = tasks.read_model_task(
      pushed['metadata']['pushed_destination'])
  assert recorded.name == task
  assert label_name == config_lib.load_config(
      overrides=overrides).data.label.name
