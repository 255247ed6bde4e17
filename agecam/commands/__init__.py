"""The ``agecam`` commands, one module per command or group of them (``agecam.cli`` assembles them).

User commands: ``video`` (and ``webcam``, ``demo``), ``image``, ``web``, ``serve``. Building and
measuring models: ``train`` (and ``ensemble``), ``evaluate`` (and ``evaluate-photos``), ``fit``
(``calibrate``, ``quantize``, ``gate-test``, ``track-test``), ``benchmark``, ``field_test``. Shared:
``errors`` (one-line failures, stop signals) and ``options`` (the options and the pipeline they make).
"""
