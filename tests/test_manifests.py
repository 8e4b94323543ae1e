"""k8s/ and cloudrun/ are valid against the real schemas, offline, and say what the job needs.

Schemas: Kubernetes' own OpenAPI-derived JSON schemas as bundled by kubernetes-validate (strict: an
unknown field is an error), and Cloud Run's and Cloud Build's API discovery documents as shipped by
google-api-python-client, turned into JSON Schema here (strict likewise). What a schema cannot say
(the restricted Pod Security profile, the exit codes the podFailurePolicy names, one image digest
everywhere) is checked against the code and the Dockerfile.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as k8s_schema

from job.errors import OUTCOMES, ExitCode

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
CLOUDRUN = ROOT / "cloudrun"
# podFailurePolicy is GA from 1.31: the oldest version the manifests must be valid for, and the newest known.
K8S_VERSIONS = ("1.31.0", k8s_schema.latest_version())
DIGEST = re.compile(r"^[a-z0-9.-]+(?::\d+)?/[a-z0-9._/-]+(?::[\w.-]+)?@sha256:[0-9a-f]{64}$")
DB_INIT_IMAGE = re.compile(r"/db-init-job[:@]")

Doc = dict[str, Any]


def load_all(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects() -> list[tuple[str, Doc]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in load_all(p)]


def by_kind(kind: str) -> Doc:
    return next(d for _, d in k8s_objects() if d["kind"] == kind)


def pod_spec(obj: Doc) -> Doc:
    spec: Doc = obj["spec"]["template"]["spec"]
    return spec


def all_containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def needs_a_human_codes() -> list[int]:
    return sorted(int(o.code) for o in OUTCOMES if o.code != ExitCode.OK and not o.retryable)


def dockerfile_user() -> tuple[int, int]:
    user = re.findall(r"^USER\s+(\d+):(\d+)\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert len(user) == 1, "the Dockerfile sets one numeric USER uid:gid"
    return int(user[0][0]), int(user[0][1])


# --- Kubernetes -------------------------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_kubernetes_manifest_is_valid_against_the_strict_schema(version: str) -> None:
    objects = k8s_objects()
    assert {d["kind"] for _, d in objects} == {"Job", "Deployment"}
    for name, doc in objects:
        try:
            k8s_schema.validate(doc, version, strict=True)
        except k8s_schema.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{name} ({doc['kind']}) against Kubernetes {e.version}: {path}: {e.message}")


def test_the_kubernetes_validator_rejects_a_misspelt_field() -> None:
    job = copy.deepcopy(by_kind("Job"))
    job["spec"]["backofLimit"] = job["spec"].pop("backoffLimit")
    with pytest.raises(k8s_schema.ValidationError):
        k8s_schema.validate(job, K8S_VERSIONS[-1], strict=True)


def test_kustomization_ties_every_manifest_and_pins_the_one_image() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    assert sorted(kust["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                if p.name != "kustomization.yaml")
    (image,) = kust["images"]
    pinned = f"{image['name']}:{image['newTag']}@{image['digest']}"
    refs = [c["image"] for _, d in k8s_objects() for c in all_containers(pod_spec(d))
            if DB_INIT_IMAGE.search(c["image"])]
    assert len(refs) == 2 and set(refs) == {pinned}, "the Job and the init container run the same digest"
    assert DIGEST.match(pinned), pinned


def test_job_fails_at_once_on_needs_a_human_codes_and_retries_the_rest() -> None:
    spec = by_kind("Job")["spec"]
    assert pod_spec(by_kind("Job"))["restartPolicy"] == "Never"
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] > 0
    assert spec["ttlSecondsAfterFinished"] > 0
    rules = spec["podFailurePolicy"]["rules"]
    fail = [r for r in rules if r["action"] == "FailJob"]
    assert len(fail) == 1
    on_codes = fail[0]["onExitCodes"]
    assert on_codes["operator"] == "In"
    assert sorted(on_codes["values"]) == needs_a_human_codes()  # from job/errors.py, 8 (drift) included
    assert on_codes["containerName"] == pod_spec(by_kind("Job"))["containers"][0]["name"]
    ignore = [r for r in rules if r["action"] == "Ignore"]
    disruption = {"type": "DisruptionTarget", "status": "True"}
    assert ignore == [{"action": "Ignore", "onPodConditions": [disruption]}]


def test_deployment_runs_the_job_as_init_container_before_the_app() -> None:
    spec = pod_spec(by_kind("Deployment"))
    (init,) = spec["initContainers"]
    assert DB_INIT_IMAGE.search(init["image"]) and init["args"] == ["run"]
    assert not any(DB_INIT_IMAGE.search(c["image"]) for c in spec["containers"])


@pytest.mark.parametrize("kind", ["Job", "Deployment"])
def test_pods_meet_the_restricted_pod_security_profile(kind: str) -> None:
    spec = pod_spec(by_kind(kind))
    pod_sc = spec.get("securityContext", {})
    assert spec.get("automountServiceAccountToken") is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & spec.keys()
    emptydirs = {v["name"] for v in spec["volumes"] if set(v) == {"name", "emptyDir"}}
    assert emptydirs == {v["name"] for v in spec["volumes"]}, "only emptyDir volumes"
    for c in all_containers(spec):
        sc = c["securityContext"]
        where = f"{kind}/{c['name']}"
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
        assert (sc.get("seccompProfile") or pod_sc.get("seccompProfile")) == {"type": "RuntimeDefault"}, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert "privileged" not in sc, where
        tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert len(tmp) == 1 and tmp[0]["name"] in emptydirs, f"{where}: /tmp is a writable emptyDir"
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= c["resources"][part].keys(), f"{where}: resources.{part}"
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError", where


@pytest.mark.parametrize("kind", ["Job", "Deployment"])
def test_db_init_container_runs_as_the_image_user_with_the_url_from_a_secret(kind: str) -> None:
    spec = pod_spec(by_kind(kind))
    (c,) = [c for c in all_containers(spec) if DB_INIT_IMAGE.search(c["image"])]
    uid, gid = dockerfile_user()
    merged = spec["securityContext"] | c["securityContext"]
    assert (merged["runAsUser"], merged["runAsGroup"]) == (uid, gid)
    env = {e["name"]: e for e in c["env"]}
    assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
    assert not any("value" in e and re.search(r"postgres(ql)?://", e["value"]) for e in c["env"])
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "terminationMessagePath" not in c, "the job writes the default /dev/termination-log"


# --- Cloud Run and Cloud Build: their API discovery documents as JSON Schema --------------

def discovery(api: str) -> Doc:
    path = resources.files("googleapiclient") / "discovery_cache" / "documents" / f"{api}.json"
    doc: Doc = json.loads(path.read_text())
    return doc


def to_json_schema(node: Doc) -> Doc:
    """A discovery-document schema as strict JSON Schema: fields not in the API are errors."""
    if "$ref" in node:
        return {"$ref": f"#/definitions/{node['$ref']}"}
    out: Doc = {}
    kind, fmt = node.get("type"), node.get("format")
    if kind == "string" and fmt in ("int64", "uint64"):  # proto3 JSON: a number or a string of digits
        out["anyOf"] = [{"type": "integer"}, {"type": "string", "pattern": r"^-?\d+$"}]
    elif kind not in (None, "any"):
        out["type"] = kind
    if "enum" in node:
        out["enum"] = node["enum"]
    if "properties" in node:
        out["properties"] = {k: to_json_schema(v) for k, v in node["properties"].items()}
        out["additionalProperties"] = False
    if "additionalProperties" in node:
        out["additionalProperties"] = to_json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = to_json_schema(node["items"])
    return out


def api_validator(api: str, root: str) -> jsonschema.protocols.Validator:
    doc = discovery(api)
    schema = {"$ref": f"#/definitions/{root}",
              "definitions": {k: to_json_schema(v) for k, v in doc["schemas"].items()}}
    cls = jsonschema.validators.validator_for({"$schema": "http://json-schema.org/draft-07/schema#"})
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def assert_valid(validator: jsonschema.protocols.Validator, doc: Doc, name: str) -> None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{name}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
                                 for e in errors)


def cloud_run_job() -> Doc:
    (doc,) = load_all(CLOUDRUN / "job.yaml")
    return doc


def test_cloud_run_job_is_valid_against_the_cloud_run_v1_schema() -> None:
    assert_valid(api_validator("run.v1", "Job"), cloud_run_job(), "cloudrun/job.yaml")


def test_the_cloud_run_validator_rejects_a_misspelt_field() -> None:
    job = cloud_run_job()
    task = job["spec"]["template"]["spec"]["template"]["spec"]
    task["maxRetrys"] = task.pop("maxRetries")
    assert list(api_validator("run.v1", "Job").iter_errors(job))


def annotation_scopes() -> dict[str, set[str]]:
    """Which resources accept each run.googleapis.com/ annotation, as the API documents it."""
    text = discovery("run.v1")["schemas"]["ObjectMeta"]["properties"]["annotations"]["description"]
    return {key: {s.strip() for s in scopes.split(",") if s.strip()}
            for key, scopes in re.findall(r"\* `([^`]+)`: ([^*]+?)\.(?= \*|$)", text)}


def test_cloud_run_annotations_sit_where_the_api_accepts_them() -> None:
    scopes = annotation_scopes()
    assert "Execution" in scopes["run.googleapis.com/cloudsql-instances"]
    job = cloud_run_job()
    placed = {"Job": job["metadata"].get("annotations", {}),
              "Execution": job["spec"]["template"]["metadata"].get("annotations", {})}
    for resource, keys in placed.items():
        for key in keys:
            if key.startswith("run.googleapis.com/"):
                assert resource in scopes[key], f"{key} is not accepted on a {resource}"
    sql = placed["Execution"]["run.googleapis.com/cloudsql-instances"]
    assert re.fullmatch(r"[a-z][\w-]*:[a-z]+-[a-z]+\d+:[\w-]+", sql), "PROJECT:REGION:INSTANCE"


def test_cloud_run_job_retries_timeout_secret_and_image() -> None:
    job = cloud_run_job()
    execution = job["spec"]["template"]["spec"]
    assert execution["taskCount"] == 1, "one task: the job is not meant to run in parallel with itself"
    task = execution["template"]["spec"]
    assert 1 <= task["maxRetries"] <= 3
    assert 300 <= int(task["timeoutSeconds"]) <= 3600
    assert task["serviceAccountName"].endswith(".iam.gserviceaccount.com")
    (c,) = task["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"]
    assert c["image"] == pod_spec(by_kind("Job"))["containers"][0]["image"], "same digest as k8s/"
    assert DIGEST.match(c["image"])


# What Cloud Build always provides (its docs: configuring-builds/substitute-variable-values).
BUILTIN_SUBSTITUTIONS = {"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA",
                         "SHORT_SHA", "REVISION_ID", "BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME",
                         "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT", "_HEAD_BRANCH", "_BASE_BRANCH"}


def cloudbuild() -> Doc:
    (doc,) = load_all(CLOUDRUN / "cloudbuild.yaml")
    return doc


def test_cloudbuild_is_valid_against_the_cloud_build_v1_schema() -> None:
    assert_valid(api_validator("cloudbuild.v1", "Build"), cloudbuild(), "cloudrun/cloudbuild.yaml")


def test_cloudbuild_substitutions_are_all_defined_and_shell_dollars_escaped() -> None:
    text = (CLOUDRUN / "cloudbuild.yaml").read_text()
    defined = set(cloudbuild()["substitutions"])
    assert all(k.startswith("_") for k in defined)
    # Cloud Build expands $NAME and ${NAME}; $$ is a literal $ for the shell. Anything else is an error.
    used = set(re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")))
    assert used <= defined | BUILTIN_SUBSTITUTIONS, used - defined - BUILTIN_SUBSTITUTIONS
    assert defined <= used, f"defined but never used: {defined - used}"


def test_cloudbuild_deploys_the_app_only_after_the_job_succeeded() -> None:
    steps = cloudbuild()["steps"]
    assert not any("waitFor" in s for s in steps), "steps run one after another; a failure stops the build"
    ids = [s["id"] for s in steps]
    assert ids == ["build", "push", "update-job", "migrate", "deploy"]
    migrate = " ".join(steps[ids.index("migrate")]["args"])
    assert "gcloud run jobs execute" in migrate and "--wait" in migrate
    assert re.search(r"exit 1\s*$", migrate), "a failed execution fails the build"
    deploy = steps[ids.index("deploy")]
    assert deploy["args"][:2] == ["run", "deploy"]
    update = " ".join(steps[ids.index("update-job")]["args"])
    assert "gcloud run jobs replace" in update and "cloudrun/job.yaml" in update
    assert cloudbuild()["substitutions"]["_JOB"] == cloud_run_job()["metadata"]["name"]


def test_cloudbuild_image_rewrite_hits_exactly_the_job_image_line() -> None:
    """The sed in update-job, run here with Python's re on job.yaml: one line changes, to the digest."""
    update = " ".join(cloudbuild()["steps"][2]["args"])
    m = re.search(r'sed "s\|(.+?)\|(.+?)\|"', update)
    assert m is not None
    pattern = m[1].replace(r"\(", "(").replace(r"\)", ")")
    new_ref = "europe-west1-docker.pkg.dev/p/shop/db-init-job@sha256:" + "a" * 64
    before = (CLOUDRUN / "job.yaml").read_text().splitlines()
    after = [re.sub(pattern, lambda g: g[1] + new_ref, line) for line in before]
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(changed) == 1 and changed[0][1].strip() == f"image: {new_ref}"
    assert yaml.safe_load("\n".join(after))["spec"]["template"]["spec"]["template"]["spec"][
        "containers"][0]["image"] == new_ref
