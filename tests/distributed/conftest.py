"""The ``run_*.py`` scripts here are torchrun workers, started by tests/test_distributed.py.

They are not test modules and must not be imported by ``--doctest-modules``.
"""

collect_ignore_glob = ["run_*.py"]
