"""Measuring models, apart from fitting them: errors on a split (``evaluate``, ``assess``), on labelled
photos (``photos``), under perturbations (``robustness``), age assurance (``assurance``,
``assurance_tables``), track ages and the shown age on generated tracks (``track_fusion``), the age
gate on generated tracks (``gate_tracks``), and the generated tables of the docs (``report``).
``track_fusion`` and ``gate_tracks`` also fit what they measure (a card's ``tracks`` and gate
parameters), on validation faces, before measuring on test faces."""
