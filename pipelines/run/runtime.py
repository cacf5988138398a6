"""What every stage entry point shares: running a Beam graph, and recording lineage."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess


def run_pipeline(build, beam_args: list[str]):
    """Builds the graph with `build(pipeline)`, runs it with the given Beam flags and returns Beam's result."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(beam_args)
    with beam.Pipeline(options=options) as pipeline:
        build(pipeline)
    return pipeline.result


def params_hash(*sections) -> str:
    payload = json.dumps([dataclasses.asdict(s) if dataclasses.is_dataclass(s) and not isinstance(s, type) else s
                          for s in sections],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def code_fingerprint(*modules) -> str:
    """Hash of the given modules' source files and the library versions that shape their output."""
    import importlib.metadata
    from pathlib import Path

    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    for package in ("torch", "transformers", "apache-beam", "pyarrow"):
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    return digest.hexdigest()
