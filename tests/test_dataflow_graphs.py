"""Each Beam stage's graph, built for the Dataflow runner with the flags a GPU job uses, as far as it
goes without network: the Runner API proto that Dataflow would receive names the expected transforms."""

import shutil

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, WorkerOptions

from pipelines.config import load
from pipelines.graphs import generation, revision
from pipelines.stages import curate, evaluate, generate, judge
from schemas.records import CANDIDATE, JUDGMENT
from tests.stage_fixtures import chdir, prompt, write_params, write_prompt_sets
from transforms.io.parquet_io import shard_name

DATAFLOW_FLAGS = [
    "--runner=DataflowRunner", "--project=selfsift-test-123", "--region=us-central1",
    "--temp_location=gs://selfsift-test-bucket/tmp", "--staging_location=gs://selfsift-test-bucket/staging",
    "--num_workers=4", "--machine_type=g2-standard-8", "--sdk_container_image=us-docker.pkg.dev/p/r/selfsift:1",
    "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver",
]


@pytest.fixture
def project(tmp_path, tiny_model_dir):
    write_params(tmp_path, "unused", judge={"llm_judge": {"enabled": True, "model": "models/base"}})
    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    write_prompt_sets(tmp_path, [prompt("t1", "Say hi.", "train")], [prompt("e1", "Say bye.", "eval")],
                      [prompt("o1", "Say so.", "eval_ood")])
    for directory, schema in (("candidates", CANDIDATE), ("judgments", JUDGMENT)):
        (tmp_path / "data" / directory / "iter-001").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([], schema=schema),
                       tmp_path / "data" / directory / "iter-001" / shard_name(0, 1))
    with chdir(tmp_path):
        yield load("params.yaml")


def runner_api_names(build) -> set[str]:
    pipeline = beam.Pipeline(options=PipelineOptions(DATAFLOW_FLAGS))
    assert type(pipeline.runner).__name__ == "DataflowRunner"
    options = pipeline.options.view_as(WorkerOptions)
    assert options.num_workers == 4 and options.machine_type == "g2-standard-8"
    assert pipeline.options.view_as(StandardOptions).runner == "DataflowRunner"
    build(pipeline)
    proto = pipeline.to_runner_api()
    return {t.unique_name for t in proto.components.transforms.values()}


def test_generate_graph(project):
    lineage = generate.lineage_of(project, "iter-001")
    names = runner_api_names(generate.graph(project, "iter-001", lineage, [0, 1]))
    assert {"ReadPrompts", "OnlyTheseShards", "Expand", "Generate", "ToCandidate", "Write"} <= names
    assert any(n.startswith("Generate/") and "RunInference" in n for n in names), sorted(names)


def test_judge_graph(project):
    names = runner_api_names(judge.graph(project, "iter-001"))
    assert {"ReadPrompts", "ReadCandidates", "RulesAndHeuristics", "Judge_llm_judge", "AllJudgments", "Write"} <= names
    assert any(n.startswith("Judge_llm_judge/") and "RunInference" in n for n in names), sorted(names)


def test_revision_graph(project):
    names = runner_api_names(revision.graph(project, "iter-001", generation.lineage_of(project, "iter-001")))
    assert {"ReadCandidates", "ReadJudgments", "JoinJudged", "Select", "Expand", "Generate", "ToCandidate", "Write"} <= names
    assert any(n.startswith("Generate/") and "RunInference" in n for n in names), sorted(names)


def test_curate_graph(project):
    names = runner_api_names(curate.graph(project, "iter-001", curate.plan_of(project, "iter-001")))
    assert {"ReadCandidates", "ReadJudgments", "ReadPrompts", "Curate", "WriteKept", "WriteRejected", "WritePairs"} <= names
    assert any(n.startswith("Curate/near dedup/") for n in names), sorted(names)
    assert any(n.startswith("Curate/screen + heuristics + decontamination + judge policy") for n in names), sorted(names)


def test_evaluate_graph(project):
    names = runner_api_names(evaluate.graph(project, "iter-000", "models/base"))
    assert {"EvalPrompts", "ToRequest", "Generate", "Score", "Write"} <= names
