"""Measuring the pipeline, apart from what runs: end-to-end speed on generated clips (``benchmark``),
batches (``batch_benchmark``), photo folders (``stills_benchmark``) and the HTTP API
(``serve_benchmark``), the dlib-based peer's runners (``peer_run``, ``peer_stills``: scripts run by the
peer's own Python), and the field test of tracks and small faces (``field_test``)."""
