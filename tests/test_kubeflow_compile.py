"""The Kubeflow V2 spec: strict parsing, nodes, wiring, image, parameters.

One compile per module (about a second once TFX is imported); each test reads
the resulting JSON the way KFP would.
"""

import glob
import json
import os
import socket

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kubeflow import runner
from pipeline import cli
from core import config as config_lib
from pipeline import factory

IMAGE = 'europe-docker.pkg.dev/acme/ml/tfx-generalize:1.2.3'
ROOT = 'gs://acme-ml/tfx/root'
DATA = 'gs://acme-ml/tfx/data'
SERVING = 'gs://acme-ml/tfx/serving'
RUN_EXECUTOR = ['python', '-m',
                'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor']
ENVIRONMENTS = os.path.join(os.path.dirname(runner.__file__), 'environments')


@pytest.fixture(scope='module')
def config():
  return config_lib.load_config()


@pytest.fixture(scope='module')
def spec_path(config, tmp_path_factory):
  path = str(tmp_path_factory.mktemp('kfp') / 'pipeline.json')
  return runner.compile_pipeline(config, output_path=path, image=IMAGE,
                                 pipeline_root=ROOT, data_root=DATA,
                                 serving_dir=SERVING)


@pytest.fixture(scope='module')
def job(spec_path):
  with open(spec_path, encoding='utf-8') as f:
    return json.load(f)


def _tasks(job):
  return job['pipelineSpec']['root']['dag']['tasks']


def _containers(job):
  return {label: e['container'] for label, e in
          job['pipelineSpec']['deploymentSpec']['executors'].items()
          if 'container' in e}


def test_spec_parses_strictly_with_kfp_protos(spec_path, job):
  with open(spec_path, encoding='utf-8') as f:
    parsed = json_format.Parse(f.read(), pipeline_spec_pb2.PipelineJob())
  spec = json_format.ParseDict(job['pipelineSpec'],
                               pipeline_spec_pb2.PipelineSpec())
  deployment = json_format.ParseDict(
      job['pipelineSpec']['deploymentSpec'],
      pipeline_spec_pb2.PipelineDeploymentConfig())
  assert parsed.runtime_config.gcs_output_directory == ROOT
  assert spec.schema_version == '2.1.0'
  assert spec.pipeline_info.name == 'taxi-generalize'
  assert deployment.executors


def test_every_node_of_the_factory_is_a_task(config, job):
  nodes = factory.create_pipeline(
      config, pipeline_root=ROOT, data_root=DATA, data_file_pattern='data.csv',
      serving_dir=SERVING).components
  tasks = set(_tasks(job))
  for node in nodes:
    if node.id == factory.NodeIds.LATEST_BLESSED:
      # KFP runs LatestBlessedModelStrategy as two chained resolver queries.
      assert {f'{node.id}-model-blessing-resolver',
              f'{node.id}-model-resolver'} <= tasks
    else:
      assert node.id in tasks
  for required in ('example_gen', 'statistics_gen', 'schema_gen',
                   'example_validator', 'transform', 'trainer', 'gate',
                   'pusher'):
    assert required in tasks


def test_transform_runs_the_size_batching_executor(job):
  """Kubeflow runs the Transform the local runner runs: the stock one with
  batches by size, not by timing (components/transform.py)."""
  spec = job['pipelineSpec']
  component = spec['components'][_tasks(job)['transform']['componentRef'][
      'name']]
  container = spec['deploymentSpec']['executors'][
      component['executorLabel']]['container']
  args = container['args']
  assert (args[args.index('--executor_class_path') + 1]
          == 'components.transform.Executor')


def test_pusher_depends_on_the_gate_blessing(job):
  tasks = _tasks(job)
  pusher = tasks['pusher']
  blessing = pusher['inputs']['artifacts']['model_blessing'][
      'taskOutputArtifact']
  assert blessing == {'producerTask': 'gate', 'outputArtifactKey': 'blessing'}
  assert 'gate' in pusher['dependentTasks']
  assert pusher['inputs']['artifacts']['model']['taskOutputArtifact'][
      'producerTask'] == 'trainer'


def test_gate_reads_candidate_and_latest_blessed_model(job):
  tasks = _tasks(job)
  gate = tasks['gate']['inputs']['artifacts']
  assert gate['model']['taskOutputArtifact']['producerTask'] == 'trainer'
  baseline = gate['baseline_model']['taskOutputArtifact']
  assert baseline['producerTask'] == 'latest_blessed_model-model-resolver'
  model_resolver = tasks['latest_blessed_model-model-resolver']
  assert model_resolver['inputs']['artifacts']['input'][
      'taskOutputArtifact']['producerTask'] == (
          'latest_blessed_model-model-blessing-resolver')
  executors = job['pipelineSpec']['deploymentSpec']['executors']
  blessing_query = executors[
      'latest_blessed_model-model-blessing-resolver_executor']['resolver'][
          'outputArtifactQueries']['model_blessing']['filter']
  assert 'tfx.ModelBlessing' in blessing_query
  assert 'metadata.blessed.number_value=1' in blessing_query
  component = job['pipelineSpec']['components']['gate']
  assert set(component['outputDefinitions']['artifacts']) == {
      'evaluation', 'blessing'}


def test_every_container_names_the_image_and_the_tfx_entrypoint(job):
  containers = _containers(job)
  assert len(containers) == len([t for t in _tasks(job)
                                 if 'resolver' not in t])
  for label, container in containers.items():
    assert container['image'] == IMAGE, label
    assert container['command'] == RUN_EXECUTOR, label
    args = container['args']
    assert args[args.index('--json_serialized_invocation_args') + 1] == '{{$}}'


def test_locations_thresholds_and_steps_are_runtime_parameters(config, job):
  root = job['pipelineSpec']['root']['inputDefinitions']['parameters']
  assert set(root) == {'data_root', 'serving_dir', 'train_args', 'gate_config'}
  assert root['data_root']['defaultValue'] == DATA
  assert root['serving_dir']['defaultValue'] == SERVING
  gate_default = json.loads(root['gate_config']['defaultValue'])
  assert gate_default['min_auc'] == config.gate.min_auc
  assert gate_default['max_gap'] == config.gate.max_gap
  assert json.loads(root['train_args']['defaultValue'])['splits'] == ['train']
  assert job['runtimeConfig']['parameterValues'] == {
      name: p['defaultValue'] for name, p in root.items()}

  tasks = _tasks(job)
  wiring = {
      ('example_gen', 'input_base'): 'data_root',
      ('pusher', 'serving_dir'): 'serving_dir',
      ('trainer', 'train_args'): 'train_args',
      ('gate', 'gate_config'): 'gate_config',
  }
  for (task, key), param in wiring.items():
    assert tasks[task]['inputs']['parameters'][key] == {
        'componentInputParameter': param}, (task, key)


def test_compiles_offline_with_gs_roots(config, tmp_path, monkeypatch):
  def no_network(*args, **kwargs):
    raise OSError('network access during compile')
  monkeypatch.setattr(socket.socket, 'connect', no_network)
  monkeypatch.setattr(socket, 'create_connection', no_network)
  monkeypatch.setattr(socket, 'getaddrinfo', no_network)
  path = runner.compile_pipeline(
      config, output_path=str(tmp_path / 'offline.json'), image=IMAGE,
      pipeline_root='gs://no-such-bucket-anywhere/root', data_root=None,
      serving_dir=None)
  with open(path, encoding='utf-8') as f:
    job = json.load(f)
  params = job['pipelineSpec']['root']['inputDefinitions']['parameters']
  assert params['serving_dir']['defaultValue'] == (
      'gs://no-such-bucket-anywhere/root/serving_model')
  # Without a data location the default is the sample inside the image.
  assert params['data_root']['defaultValue'] == runner.IMAGE_TAXI_DATA_ROOT
  assert not glob.glob('gs:*') and not os.path.exists('gs:')


def test_without_a_root_the_run_must_supply_one(config, tmp_path):
  job = runner.build_pipeline_job(config, image=IMAGE)
  assert not job['runtimeConfig'].get('gcsOutputDirectory')
  params = job['pipelineSpec']['root']['inputDefinitions']['parameters']
  assert 'defaultValue' not in params['serving_dir']
  assert not params['serving_dir'].get('isOptional', False)


def test_yaml_output_is_a_self_contained_pipeline_spec(config, tmp_path):
  path = runner.compile_pipeline(
      config, output_path=str(tmp_path / 'pipeline.yaml'), image=IMAGE,
      pipeline_root=ROOT, data_root=DATA, serving_dir=SERVING)
  with open(path, encoding='utf-8') as f:
    raw = yaml.safe_load(f)
  spec = json_format.ParseDict(raw, pipeline_spec_pb2.PipelineSpec())
  params = spec.root.input_definitions.parameters
  assert params['data_root'].default_value.string_value == DATA
  assert params['serving_dir'].is_optional


def test_default_beam_args_keep_direct_runner_in_memory(job):
  for label, container in _containers(job).items():
    assert not any(a.startswith('--runner=') for a in container['args']), label


@pytest.mark.parametrize('environment,runner_flag,required', [
    ('dataflow', '--runner=DataflowRunner',
     ['--project=PROJECT', '--region=us-central1', '--sdk_location=container']),
    ('flink', '--runner=FlinkRunner',
     ['--flink_master=http://flink-jobmanager.flink:8081',
      '--environment_type=EXTERNAL']),
    ('spark', '--runner=SparkRunner',
     ['--spark_master_url=spark://spark-master.spark:7077',
      '--environment_type=EXTERNAL']),
])
def test_environment_files_set_the_beam_runner(environment, runner_flag,
                                               required, tmp_path):
  config = config_lib.load_config(
      os.path.join(ENVIRONMENTS, f'{environment}.yaml'))
  job = runner.build_pipeline_job(config, image=IMAGE)
  assert job['runtimeConfig']['gcsOutputDirectory'] == (
      'gs://BUCKET/tfx-generalize/pipeline_root')
  containers = _containers(job)
  beam_labels = {'example_gen_executor', 'statistics_gen_executor',
                 'transform_executor', 'gate_executor'}
  assert beam_labels <= set(containers)
  for label in beam_labels:
    args = containers[label]['args']
    assert runner_flag in args
    for flag in required:
      assert flag in args, (label, flag)
    # Beam workers run the image the tasks run in.
    assert f'--sdk_container_image={IMAGE}' in args
    assert not any('{image}' in a for a in args)
  pre_cache = containers['example_gen_executor']['lifecycle']['preCacheCheck']
  assert runner_flag in pre_cache['args']


def test_cli_compile_writes_the_spec(tmp_path, capsys):
  out = tmp_path / 'build' / 'pipeline.json'
  code = cli.main(['compile', '--output', str(out), '--image', IMAGE,
                   '--pipeline-root', ROOT, '--set', 'model.epochs=3'])
  assert code == 0
  assert str(out) in capsys.readouterr().out
  job = json.loads(out.read_text())
  trainer_config = json.loads(
      _tasks(job)['trainer']['inputs']['parameters']['custom_config'][
          'runtimeValue']['constant'])
  assert trainer_config['config']['model']['epochs'] == 3


def test_cli_compile_prints_one_line(tmp_path):
  """TensorFlow's and TFX's import-time logs stay in a log file (removed
  after a successful compilation), as a quiet run keeps them."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'pipeline.json'
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  env['TMPDIR'] = str(tmp_path)
  proc = subprocess.run(
      [sys.executable, '-m', 'pipeline', 'compile', '--output', str(out)],
      capture_output=True, text=True, env=env, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == f'Pipeline spec written to {out}\n'
  assert proc.stderr == ''
  assert sorted(os.listdir(tmp_path)) == ['pipeline.json']


@pytest.mark.parametrize('task, label', [('multiclass', 'species'),
                                         ('regression', 'price')])
def test_every_task_compiles_with_the_task_in_its_components(task, label,
                                                             tmp_path):
  """The task reaches the label check, Transform, the Trainer and the gate
  of the compiled spec, so a Kubeflow run judges it as a local one would."""
  config = config_lib.load_config(overrides=[
      f'task={task}', f'data.label={label}',
      'data.features={numeric: [a], categorical: [b]}'])
  path = runner.compile_pipeline(config, output_path=str(tmp_path / 'p.json'),
                                 image=IMAGE, pipeline_root=ROOT,
                                 data_root=DATA, serving_dir=SERVING)
  with open(path, encoding='utf-8') as f:
    tasks = _tasks(json.load(f))

  def constant(node, key):
    return tasks[node]['inputs']['parameters'][key]['runtimeValue']['constant']
  assert constant(factory.NodeIds.ANOMALY_GATE, 'task') == task
  assert json.loads(constant(factory.NodeIds.ANOMALY_GATE, 'label'))[
      'name'] == label
  assert constant(factory.NodeIds.GATE, 'task') == task
  for node in (factory.NodeIds.TRANSFORM, factory.NodeIds.TRAINER):
    custom = json.loads(constant(node, 'custom_config'))
    assert custom['config']['task'] == task, node


def test_example_gen_carries_the_missing_values(job, tmp_path):
  """data.missing_values reaches the CSV executor through the compiled spec
  (its custom_config), as a Kubeflow run's executor reads it."""
  from components.ingest import component  # pylint: disable=g-import-not-at-top

  def carried(spec):
    parameters = _tasks(spec)[factory.NodeIds.EXAMPLE_GEN]['inputs'][
        'parameters']
    return component.missing_values_of(
        {'custom_config': parameters['custom_config']['runtimeValue'][
            'constant']})
  assert carried(job) == config_lib.PANDAS_MISSING_VALUES
  config = config_lib.load_config(overrides=["data.missing_values=['', '?']"])
  path = runner.compile_pipeline(config, output_path=str(tmp_path / 'p.json'),
                                 image=IMAGE, pipeline_root=ROOT,
                                 data_root=DATA, serving_dir=SERVING)
  with open(path, encoding='utf-8') as f:
    assert carried(json.load(f)) == ('', '?')
