"""The Dockerfile, checked without a Docker engine.

The fast tests read the Dockerfile and .dockerignore for what the image must
be (Python 3.10, the lock synced with uv before the source is copied, a
non-editable install, a non-root user, legacy Keras). The slow test replays
the Dockerfile's own ``uv`` steps in a clean virtualenv and imports, there,
every executor class and user function the compiled spec names.
"""

import fnmatch
import json
import os
import re
import shlex
import subprocess
import tempfile

import pytest

from kubeflow import dockerfile

REPO = dockerfile.REPO_ROOT
SOURCE_PATHS = ('pyproject.toml', 'core', 'pipeline', 'components', 'kubeflow')


@pytest.fixture(scope='module')
def instructions():
  return dockerfile.parse()


@pytest.fixture(scope='module')
def final(instructions):
  return dockerfile.final_stage(instructions)


def _index(final, keyword, predicate):
  for i, ins in enumerate(final):
    if ins.keyword == keyword and predicate(ins):
      return i
  raise AssertionError(f'no {keyword} step matching in the final stage')


def test_base_image_is_python_310(instructions, final):
  args = {}
  for ins in instructions:
    if ins.keyword == 'ARG' and '=' in ins.args:
      key, value = ins.args.split('=', 1)
      args[key] = value
  base = re.sub(r'\$\{(\w+)\}', lambda m: args[m.group(1)], final[0].args)
  assert re.fullmatch(r'python:3\.10(\.\d+)?-slim(-\w+)?', base), base


def test_lock_is_synced_with_uv_before_the_source_is_copied(final):
  copy_lock = _index(final, 'COPY', lambda i: i.args.split()[0] ==
                     'requirements.lock')
  sync = _index(final, 'RUN', lambda i: 'uv pip sync' in i.args)
  assert 'requirements.lock' in final[sync].args
  first_source = min(
      _index(final, 'COPY', lambda i, p=p: i.args.split()[0] == p)
      for p in SOURCE_PATHS)
  assert copy_lock < sync < first_source


def test_project_is_installed_as_a_package_after_the_source(final):
  install = _index(final, 'RUN', lambda i: 'uv pip install' in i.args)
  last_source = max(
      _index(final, 'COPY', lambda i, p=p: i.args.split()[0] == p)
      for p in SOURCE_PATHS)
  assert install > last_source
  words = shlex.split(dockerfile.split_flags(final[install].args)[1])
  assert '--no-deps' in words  # Only the lock decides versions.
  assert '-e' not in words and '--editable' not in words
  assert words[-1] == '.'


def test_runs_as_a_non_root_user_with_legacy_keras(instructions, final):
  users = [i.args for i in final if i.keyword == 'USER']
  assert users and users[-1] not in ('root', '0')
  assert final.index([i for i in final if i.keyword == 'USER'][-1]) > _index(
      final, 'RUN', lambda i: 'uv pip install' in i.args)
  env = dockerfile.env_of(instructions)
  assert env['TF_USE_LEGACY_KERAS'] == '1'
  assert env['VIRTUAL_ENV'] == dockerfile.IMAGE_VENV
  assert env['PATH'].startswith(dockerfile.IMAGE_VENV + '/bin')
  # The task's working directory is not the source copy.
  workdirs = [i.args for i in final if i.keyword == 'WORKDIR']
  assert workdirs[-1] != workdirs[0]


def _ignored(path, patterns):
  """Docker's rule: the last matching pattern decides; ``!`` re-includes."""
  ignored = False
  parts = path.split('/')
  for pattern in patterns:
    negate = pattern.startswith('!')
    pattern = pattern.lstrip('!')
    candidates = ['/'.join(parts[:n]) for n in range(1, len(parts) + 1)]
    regex = fnmatch.translate(pattern).replace('.*', '[^/]*')
    if pattern.startswith('**/'):
      regex = '(.*/)?' + fnmatch.translate(pattern[3:]).replace('.*', '[^/]*')
    if any(re.fullmatch(regex, c) for c in candidates):
      ignored = not negate
  return ignored


def test_dockerignore_sends_the_sources_and_nothing_else(final):
  with open(os.path.join(REPO, '.dockerignore'), encoding='utf-8') as f:
    patterns = [l.strip() for l in f
                if l.strip() and not l.lstrip().startswith('#')]
  copied = [shlex.split(i.args)[0] for i in final
            if i.keyword == 'COPY' and not i.args.startswith('--from')]
  for source in copied:
    assert not _ignored(source, patterns), source
  assert not _ignored('components/gate/executor.py', patterns)
  for private in ('.venv/bin/python', '.git/config', 'outputs/metadata.sqlite',
                  'build/pipeline.json', 'tests/test_config.py',
                  'components/__pycache__/x.pyc'):
    assert _ignored(private, patterns), private


def _named_code(job):
  """Executor classes, driver modules and user functions the spec names."""
  classes, modules, functions = set(), set(), set()
  spec = job['pipelineSpec']
  for executor in spec['deploymentSpec']['executors'].values():
    container = executor.get('container')
    if not container:
      continue
    args = container['args']
    classes.add(args[args.index('--executor_class_path') + 1])
    modules.add(container['command'][2])
    hook = container.get('lifecycle', {}).get('preCacheCheck')
    if hook:
      modules.add(hook['command'][2])
  for task in spec['root']['dag']['tasks'].values():
    for key in ('run_fn', 'preprocessing_fn', 'tuner_fn'):
      value = task.get('inputs', {}).get('parameters', {}).get(key)
      if value:
        functions.add(value['runtimeValue']['constant'])
  return classes, modules, functions


@pytest.fixture(scope='module')
def image_python():
  # Cached by content under the temp dir, so the e2e test reuses it. Hardlinks
  # from uv's cache and no bytecode pass: the same files, placed faster.
  return dockerfile.cached_install(
      os.path.join(tempfile.gettempdir(), 'tfx-generalize-tests'),
      extra_env={'UV_LINK_MODE': 'hardlink', 'UV_COMPILE_BYTECODE': '0'})


@pytest.mark.slow
def test_image_install_imports_everything_the_spec_names(image_python,
                                                         tmp_path):
  # Imported here: the structural tests above must not pay for TensorFlow.
  from kubeflow import runner
  from core import config as config_lib
  config = config_lib.load_config(overrides=['tuning.enabled=true'])
  job = runner.build_pipeline_job(config, pipeline_root='gs://b/root')
  classes, modules, functions = _named_code(job)
  assert 'components.gate.executor.Executor' in classes
  assert 'components.trainer.run.run_fn' in functions
  probe = (
      'import importlib, json, sys\n'
      'from tfx.utils import import_utils\n'
      'names = json.loads(sys.argv[1])\n'
      'for c in names["classes"]: import_utils.import_class_by_path(c)\n'
      'for m in names["modules"]: importlib.import_module(m)\n'
      'for f in names["functions"]: import_utils.import_func_from_module(\n'
      '    *f.rsplit(".", 1))\n'
      'import components\n'
      'print(json.dumps({"components": components.__file__}))\n')
  names = {'classes': sorted(classes), 'modules': sorted(modules),
           'functions': sorted(functions)}
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', PYTHONPATH='')
  # cwd is not the repository: only the installed package can satisfy it.
  out = subprocess.run([image_python, '-c', probe, json.dumps(names)],
                       cwd=tmp_path, env=env, check=True,
                       capture_output=True, text=True).stdout
  location = json.loads(out.strip().splitlines()[-1])['components']
  venv = os.path.dirname(os.path.dirname(image_python))
  assert location.startswith(os.path.join(venv, 'lib')), location
  assert 'site-packages' in location  # Non-editable: a copy, not the tree.
  # The compiled default data_root exists at the same place in the image.
  sample = os.path.join(
      venv, os.path.relpath(dockerfile.IMAGE_TAXI_DATA_ROOT, dockerfile.IMAGE_VENV),
      'data.csv')
  assert os.path.isfile(sample)
