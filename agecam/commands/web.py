"""``agecam web``: the Streamlit app."""

from __future__ import annotations

import json
import os
import sys

import click

from agecam.core.paths import REPO_ROOT

from .errors import Failure
from .options import check_port_free, require_extra


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--host", default="localhost", show_default=True, help="Address to bind; 0.0.0.0 for the LAN.")
@click.option("--ice-servers", default=None, metavar="JSON",
              help='WebRTC ICE servers for LAN/remote use, e.g. \'[{"urls": ["stun:stun.example.org:3478"]}]\'.')
def web(port, host, ice_servers):
    """Serve the web app (live camera, image prediction, model pages)."""
    require_extra("web", "web")
    app = REPO_ROOT / "webapp" / "app.py"
    env = dict(os.environ)
    if ice_servers is not None:
        try:
            json.loads(ice_servers)
        except json.JSONDecodeError:
            raise Failure("--ice-servers must be JSON, e.g. '[{\"urls\": [\"stun:host:3478\"]}]'")
        env["AGECAM_ICE_SERVERS"] = ice_servers
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
               "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.maxUploadSize", "10", "--client.toolbarMode", "minimal"]
    check_port_free(host, port)  # before the banner: a refused start says only why
    click.echo(f"agecam web app on http://{host}:{port} (Ctrl-C stops it)", err=True)
    # Become the Streamlit server (no child process), so stopping agecam stops the server.
    os.chdir(app.parent.parent)
    os.execve(sys.executable, command, env)
