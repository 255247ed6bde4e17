"""``agecam serve``: ages of the faces in pictures over HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .errors import Failure, guarded
from .options import build_pipelines, cam_config, check_port_free, model_option, require_extra


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but this machine (0.0.0.0, a LAN address) needs an API token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@model_option
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Pictures worked on at once, each by a pipeline of its own sharing the model [CPU cores].")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding the API token requests must carry (Authorization: Bearer TOKEN) [$AGECAM_API_TOKEN].")
@click.option("--max-body-mb", type=click.FloatRange(0.01, 1000), default=20, show_default=True,
              help="Largest request body (413 above it).")
@click.option("--max-megapixels", type=click.FloatRange(0.01, 400), default=40, show_default=True,
              help="Largest decoded picture (413 above it).")
@click.option("--queue", "queue_size", type=click.IntRange(0, 10_000), default=16, show_default=True,
              help="Requests that may wait for a worker; beyond them 503 with Retry-After.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 3600), default=30, show_default=True,
              help="Seconds a picture may take (504 after).")
def serve(host, port, model, runtime, workers, token_file, max_body_mb, max_megapixels, queue_size, timeout_s):
    """Serve the ages of the faces in pictures over HTTP: POST /v1/ages, GET /v1/health, /v1/models, /docs."""
    require_extra("serve", "serve")
    from agecam.core.hardware import cpu_cores
    from agecam.realtime.serve import TOKEN_ENV, Pipelines, ServeConfig
    from agecam.realtime.serve import serve as run_server

    token = os.environ.get(TOKEN_ENV) or None
    if token_file is not None:
        try:
            token = token_file.read_text().strip() or None
        except (OSError, UnicodeDecodeError) as error:
            raise Failure(f"--token-file {token_file}: {getattr(error, 'strerror', None) or error}") from None
        if token is None:
            raise Failure(f"--token-file {token_file} is empty")
    try:
        config = ServeConfig(host=host, port=port, max_body_bytes=int(max_body_mb * 1e6),
                             max_pixels=int(max_megapixels * 1e6), queue=queue_size, timeout_s=timeout_s, token=token)
    except ValueError as error:
        raise Failure(str(error)) from None
    check_port_free(host, port)
    cams = build_pipelines(cam_config(model, runtime), workers or (1 if runtime == "keras" else cpu_cores()))
    try:
        from agecam.core.age_model import load_cards

        pipelines = Pipelines(cams)
        click.echo(f"agecam API on http://{host}:{port} (model {pipelines.model.name}, {len(cams)} "
                   f"worker{'s' if len(cams) != 1 else ''}"
                   f"{', token required' if token else ''}; docs at /docs; Ctrl-C stops it)", err=True)
        run_server(pipelines, config, guarded(load_cards))
    finally:
        for built in cams:
            built.close()
