"""k8s/fleet/ and cloudrun/'s fleet files, validated by the machinery of test_manifests.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes_validate import utils as k8s_schema
from test_kustomize import kustomize, validate
from test_manifests import (
    CLOUDRUN,
    K8S,
    K8S_VERSIONS,
    api_validator,
    assert_valid,
    by_kind,
    load_all,
    needs_a_human_codes,
    pod_spec,
)

FLEET = K8S / "fleet"


def indexed_job() -> dict[str, Any]:
    (doc,) = load_all(FLEET / "indexed-job.yaml")
    return doc


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_indexed_job_is_valid_against_the_strict_schema(version: str) -> None:
    try:
        k8s_schema.validate(indexed_job(), version, strict=True)
    except k8s_schema.ValidationError as e:
        pytest.fail(f"indexed-job.yaml against Kubernetes {e.version}: {e.path}: {e.message}")


def test_each_index_fails_alone_on_needs_a_human_codes_and_knows_the_task_count() -> None:
    job = indexed_job()
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["backoffLimitPerIndex"] >= 1
    assert 0 <= spec["maxFailedIndexes"] < spec["completions"]
    (fail,) = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "FailIndex"]
    assert sorted(fail["onExitCodes"]["values"]) == needs_a_human_codes()
    (c,) = pod_spec(job)["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert c["args"] == ["fleet", "run"] and env["DB_INIT_FLEET_TASK_COUNT"] == str(spec["completions"])
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert c["image"] == pod_spec(by_kind("Job"))["containers"][0]["image"], "the release's digest"


def test_the_fleet_kustomization_renders_valid_objects() -> None:
    objects = kustomize(FLEET)
    assert [d["kind"] for d in objects] == ["Job"]
    validate(objects)


def test_cloud_run_fleet_job_and_staged_build_are_valid() -> None:
    (job,) = load_all(CLOUDRUN / "fleet-job.yaml")
    assert_valid(api_validator("run.v1", "Job"), job, "cloudrun/fleet-job.yaml")
    execution = job["spec"]["template"]["spec"]
    assert execution["taskCount"] > 1 and 1 <= execution["parallelism"] <= execution["taskCount"]
    assert execution["template"]["spec"]["containers"][0]["args"] == ["fleet", "run"]
    (build,) = load_all(CLOUDRUN / "cloudbuild-fleet.yaml")
    assert_valid(api_validator("cloudbuild.v1", "Build"), build, "cloudrun/cloudbuild-fleet.yaml")
    steps = build["steps"]
    assert [s["id"] for s in steps] == ["canary", "status-canary", "rest"], "the canary group, then the rest"
    assert not any("waitFor" in s for s in steps), "one after another: a failed canary stops the build"
    canary = " ".join(steps[0]["args"])
    assert "--wait" in canary and "DB_INIT_FLEET_GROUP=${_CANARY_GROUP}" in canary
    assert build["substitutions"]["_JOB"] == job["metadata"]["name"]
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", (CLOUDRUN / "cloudbuild-fleet.yaml").read_text()))
    assert used == set(build["substitutions"])
