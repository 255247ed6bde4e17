"""The ``agecam`` command line: the composition root that wires ``core``, ``realtime`` and ``training``.

Each command parses its options, calls one function of a package and prints the result; the
packages import ``core`` only (``tests/test_import_rules.py``). ``python -m agecam`` runs it too.
"""
