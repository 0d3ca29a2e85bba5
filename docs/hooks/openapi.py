"""MkDocs hook: the service's OpenAPI document, generated from the code at build time
(``manage.py spectacular``), joins the site as ``openapi.json`` for the reference page."""

import os
import subprocess
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]


def openapi_document() -> str:
    # DEBUG=true: the document needs no production secrets, and it is the same either way.
    env = {**os.environ, "DEBUG": "true"}
    return subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--format", "openapi-json"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "openapi.json", content=openapi_document()))
    return files
