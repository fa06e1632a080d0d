"""The code's version in the cache key (pipeline/code_version.py)."""

import json
import shutil

from core import config as config_lib
from pipeline import code_version, factory
from pipeline.factory import NodeIds


def test_the_version_follows_every_source_file(tmp_path):
  for package in code_version.PACKAGES:
    shutil.copytree(f'{code_version._ROOT}/{package}', tmp_path / package,  # pylint: disable=protected-access
                    ignore=shutil.ignore_patterns('__pycache__'))
  before = code_version.code_version(str(tmp_path))
  assert before == code_version.code_version()  # The same files.
  assert before == code_version.code_version(str(tmp_path))  # Stable.
  (tmp_path / 'core' / 'tasks' / 'binary.py').write_text('# changed\n', 'utf-8')
  assert code_version.code_version(str(tmp_path)) != before
  # Bytecode is not source.
  (tmp_path / 'components' / 'x.pyc').write_bytes(b'\0')
  changed = code_version.code_version(str(tmp_path))
  (tmp_path / 'components' / 'x.pyc').write_bytes(b'\1')
  assert code_version.code_version(str(tmp_path)) == changed


def _example_gen_config(version):
  pipeline = factory.create_pipeline(
      config_lib.load_config(), pipeline_root='/tmp/root', data_root='/data',
      data_file_pattern='taxi.csv', serving_dir='/tmp/serving',
      code_version=version)
  [example_gen] = [c for c in pipeline.components
                   if c.id == NodeIds.EXAMPLE_GEN]
  return json.dumps(example_gen.exec_properties['custom_config'],
                    default=str, sort_keys=True)


def test_the_version_is_an_example_gen_parameter():
  # ExampleGen is upstream of every other component: new code, new examples.
  assert _example_gen_config('v1') == _example_gen_config('v1')
  assert _example_gen_config('v1') != _example_gen_config('v2')
