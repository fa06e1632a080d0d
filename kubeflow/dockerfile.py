"""Reads the Dockerfile and replays its install steps without a Docker engine.

The image cannot be built here, but its Python environment can: the steps
that make it are ``COPY`` and ``uv`` commands. :func:`replay_install` lays the
``COPY`` sources out under a local directory that stands for the image's
filesystem and runs the ``uv`` ``RUN`` steps verbatim in it, with the
Dockerfile's ``ENV`` (container paths moved under that directory). The result
is the virtualenv the image would hold, which tests import from and run the
compiled pipeline's tasks with.

  python -m kubeflow.dockerfile /tmp/image-root   # prints the venv's python
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import Dict, List, Mapping, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO_ROOT, 'Dockerfile')
# The Dockerfile's VIRTUAL_ENV (a test keeps the two equal), and the taxi
# sample inside it: the tfx wheel ships it.
IMAGE_VENV = '/opt/venv'
IMAGE_TAXI_DATA_ROOT = (
    f'{IMAGE_VENV}/lib/python3.10/site-packages/'
    'tfx/examples/chicago_taxi_pipeline/data/simple')


@dataclasses.dataclass
class Instruction:
  keyword: str  # Upper case: FROM, RUN, COPY, ...
  args: str  # Continuations joined, comments dropped.
  stage: int  # Index of the FROM this instruction belongs to.


def parse(path: str = DOCKERFILE) -> List[Instruction]:
  """Instructions in order; enough of the format for this project's file."""
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  instructions, buffer, stage = [], '', -1
  for line in lines:
    stripped = line.strip()
    if not buffer and (not stripped or stripped.startswith('#')):
      continue
    if buffer and stripped.startswith('#'):
      continue  # Comment lines inside a continued instruction are dropped.
    if stripped.endswith('\\'):
      buffer += stripped[:-1] + ' '
      continue
    text = (buffer + stripped).strip()
    buffer = ''
    keyword, _, args = text.partition(' ')
    keyword = keyword.upper()
    if keyword == 'FROM':
      stage += 1
    instructions.append(Instruction(keyword, args.strip(), stage))
  return instructions


def final_stage(instructions: Sequence[Instruction]) -> List[Instruction]:
  last = max(i.stage for i in instructions)
  return [i for i in instructions if i.stage == last]


def split_flags(args: str) -> tuple:
  """(leading ``--flag=value`` options, the rest) of a RUN or COPY."""
  flags, rest = [], args
  while rest.startswith('--'):
    flag, _, rest = rest.partition(' ')
    flags.append(flag)
    rest = rest.lstrip()
  return flags, rest


def env_of(instructions: Sequence[Instruction]) -> Dict[str, str]:
  """The final stage's ENV, with ``$VAR`` references expanded in order."""
  env: Dict[str, str] = {}
  for ins in final_stage(instructions):
    if ins.keyword != 'ENV':
      continue
    for item in shlex.split(ins.args):
      key, _, value = item.partition('=')
      env[key] = re.sub(r'\$\{?(\w+)\}?',
                        lambda m: env.get(m.group(1), m.group(0)), value)
  return env


def uv_steps(instructions: Sequence[Instruction]) -> List[str]:
  """The shell commands of the final stage's RUN steps that call uv."""
  steps = []
  for ins in final_stage(instructions):
    if ins.keyword == 'RUN':
      _, command = split_flags(ins.args)
      if command.startswith('uv '):
        steps.append(command)
  return steps


def _under(root: str, container_path: str) -> str:
  return os.path.join(root, container_path.lstrip('/'))


def replay_install(root: str, *, dockerfile: str = DOCKERFILE,
                   context: str = REPO_ROOT,
                   python: Optional[str] = None,
                   extra_env: Optional[Mapping[str, str]] = None,
                   log=None) -> str:
  """Replays COPY and ``uv`` RUN steps of the final stage under ``root``.

  ``python`` is the interpreter ``uv venv`` uses (the image's is the base
  image's python3.10); by default the one running this code. Returns the
  path of the venv's python inside ``root``.
  """
  instructions = parse(dockerfile)
  env = env_of(instructions)
  venv = env['VIRTUAL_ENV']
  shell_env = dict(os.environ)
  shell_env.update(env)
  shell_env['VIRTUAL_ENV'] = _under(root, venv)
  shell_env['PATH'] = os.path.join(shell_env['VIRTUAL_ENV'], 'bin') + (
      os.pathsep + os.environ.get('PATH', ''))
  # The base interpreter, not a venv's: ``uv venv`` wants a real Python.
  shell_env['UV_PYTHON'] = python or os.path.join(
      sys.base_prefix, 'bin', f'python{sys.version_info[0]}.{sys.version_info[1]}')
  shell_env.update(extra_env or {})
  workdir = '/'
  for ins in final_stage(instructions):
    flags, rest = split_flags(ins.args)
    if ins.keyword == 'WORKDIR':
      workdir = os.path.join(workdir, rest)
      os.makedirs(_under(root, workdir), exist_ok=True)
    elif ins.keyword == 'COPY' and not any(f.startswith('--from')
                                           for f in flags):
      *sources, dest = shlex.split(rest)
      target = _under(root, os.path.join(workdir, dest))
      for source in sources:
        src = os.path.join(context, source)
        if os.path.isdir(src):
          # Docker copies a directory's contents into the destination.
          shutil.copytree(src, target, dirs_exist_ok=True,
                          ignore=shutil.ignore_patterns(
                              '__pycache__', '*.pyc', '*.egg-info'))
        else:
          path = (os.path.join(target, os.path.basename(source))
                  if dest.endswith('/') else target)
          os.makedirs(os.path.dirname(path), exist_ok=True)
          shutil.copy2(src, path)
    elif ins.keyword == 'RUN':
      if not rest.startswith('uv '):
        continue  # System steps (useradd) need root and change nothing here.
      if log:
        log(f'[dockerfile] RUN {rest}')
      subprocess.run(['bash', '-euo', 'pipefail', '-c', rest],
                     cwd=_under(root, workdir), env=shell_env, check=True)
  return os.path.join(shell_env['VIRTUAL_ENV'], 'bin', 'python')


def _inputs_digest(dockerfile: str, context: str) -> str:
  """Hash of the Dockerfile and every file its COPY steps send."""
  digest = hashlib.sha256()
  paths = [dockerfile]
  for ins in final_stage(parse(dockerfile)):
    flags, rest = split_flags(ins.args)
    if ins.keyword == 'COPY' and not any(f.startswith('--from') for f in flags):
      for source in shlex.split(rest)[:-1]:
        src = os.path.join(context, source)
        if os.path.isdir(src):
          for base, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d != '__pycache__'
                             and not d.endswith('.egg-info'))
            paths += [os.path.join(base, f) for f in sorted(files)
                      if not f.endswith('.pyc')]
        else:
          paths.append(src)
  for path in paths:
    digest.update(os.path.relpath(path, context).encode())
    with open(path, 'rb') as f:
      digest.update(hashlib.sha256(f.read()).digest())
  return digest.hexdigest()[:16]


def cached_install(cache_root: str, *, dockerfile: str = DOCKERFILE,
                   context: str = REPO_ROOT, **kwargs) -> str:
  """:func:`replay_install` under ``cache_root``, reused while the Dockerfile
  and everything it copies are unchanged (a test session builds it once)."""
  root = os.path.join(cache_root,
                      f'image-root-{_inputs_digest(dockerfile, context)}')
  venv = env_of(parse(dockerfile))['VIRTUAL_ENV']
  python = os.path.join(_under(root, venv), 'bin', 'python')
  marker = os.path.join(root, '.complete')
  if os.path.exists(marker):
    return python
  shutil.rmtree(root, ignore_errors=True)
  python = replay_install(root, dockerfile=dockerfile, context=context,
                          **kwargs)
  with open(marker, 'w', encoding='utf-8'):
    pass
  return python


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if len(argv) != 1:
    print('usage: python -m kubeflow.dockerfile ROOT', file=sys.stderr)
    return 2
  print(replay_install(os.path.abspath(argv[0]), log=print))
  return 0


if __name__ == '__main__':
  sys.exit(main())
