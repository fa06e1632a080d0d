"""Benchmarks for issue 7 (performance), separate from the tests.

Run with ``make bench`` or ``python -m bench [p1|p2|p3|p4|all] ...``; see
``bench/__main__.py``.  Figures go to ``docs/performance.md``.
"""
