"""`kubectl kustomize` renders k8s/ (and with each hook component) into objects the strict schemas accept."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as k8s_schema
from matrix import in_ci
from test_manifests import K8S, K8S_VERSIONS, by_kind

README = (K8S.parent / "README.md").read_text()
HOOKS = {
    "helm-hooks": {"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "-5",
                   "helm.sh/hook-delete-policy": "before-hook-creation"},
    "argocd-presync": {"argocd.argoproj.io/hook": "PreSync",
                       "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation"},
}


def kustomize(path: Path) -> list[dict[str, Any]]:
    if not shutil.which("kubectl"):
        if in_ci():
            pytest.fail("kubectl is missing (CI=true)")
        pytest.skip("no kubectl: `kubectl kustomize` renders k8s/")
    out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def overlay(tmp_path: Path, *components: str) -> Path:
    """A user's own kustomization on top of k8s/, as README's recipes write it (paths must be relative)."""
    rel = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": [rel],
        "components": [f"{rel}/components/{c}" for c in components]}))
    return tmp_path


def validate(objects: list[dict[str, Any]]) -> None:
    for version in K8S_VERSIONS:
        for doc in objects:
            try:
                k8s_schema.validate(doc, version, strict=True)
            except k8s_schema.ValidationError as e:
                pytest.fail(f"rendered {doc['kind']} against Kubernetes {e.version}: {e.path}: {e.message}")


def test_rendered_kustomization_is_valid_and_pins_the_digest_everywhere() -> None:
    objects = kustomize(K8S)
    assert sorted(d["kind"] for d in objects) == ["Deployment", "Job"]
    validate(objects)
    digest = yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"][0]["digest"]
    job = next(d for d in objects if d["kind"] == "Job")
    deployment = next(d for d in objects if d["kind"] == "Deployment")
    images = [c["image"] for c in job["spec"]["template"]["spec"]["containers"]]
    images += [c["image"] for c in deployment["spec"]["template"]["spec"]["initContainers"]]
    assert all(i.endswith(f"@{digest}") for i in images), images
    assert job == by_kind("Job") | {"metadata": job["metadata"]}, "kustomize changes nothing but the image"


@pytest.mark.parametrize("component", list(HOOKS))
def test_each_hook_component_annotates_the_job_only(tmp_path: Path, component: str) -> None:
    objects = kustomize(overlay(tmp_path, component))
    validate(objects)
    job = next(d for d in objects if d["kind"] == "Job")
    assert job["metadata"]["annotations"] == HOOKS[component]
    deployment = next(d for d in objects if d["kind"] == "Deployment")
    assert not deployment["metadata"].get("annotations")
    assert f"k8s/components/{component}" in README, "README has a recipe for it"


def test_helm_timeout_in_the_recipe_outlasts_the_job_deadline() -> None:
    deadline = by_kind("Job")["spec"]["activeDeadlineSeconds"]
    (minutes,) = set(re.findall(r"helm upgrade --install [^\n]*--timeout (\d+)m", README))
    assert int(minutes) * 60 > deadline > 5 * 60, "Helm's default 5m would give up while the Job still runs"
