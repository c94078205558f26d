"""The image deployments' jobs, rendered offline through the workers' own classes.

There is no Google Cloud project and no Docker engine here, so what Cloud Run and Docker
would be asked to run is proven the way each worker builds it: the work pool's default base
job template (``get_default_base_job_template()``), the deployment's job variables from
``prefect.yaml`` (templated with what its build steps output, as ``prefect deploy`` does),
``from_template_and_values`` and ``prepare_for_flow_run``. ``tests/scenarios/test_deployment.py``
renders the deployed copies, read back from the Prefect server, the same way.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from typing import Any

import pytest
import yaml

from partyhelp_pipeline.settings import JOB_TIMEOUT_MARGIN_SECONDS, Settings
from tests.conftest import ROOT

FLOW_TIMEOUT = Settings.model_fields["flow_timeout_seconds"].default  # 4 h
SERVICE_ACCOUNT = "partyhelp-sync@my-project.iam.gserviceaccount.com"  # OPERATIONS, section 8
# A name that is, or ends in, a secret; PREFECT_API_KEY would be one too.
SECRET_NAME = re.compile(r"PASSWORD|SALT|SECRET|TOKEN|API_KEY|CREDENTIALS$", re.I)


@pytest.fixture(autouse=True)
def worker_credentials(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's application default credentials, which prefect-gcp's GcpCredentials
    loads when the configuration is built (a worker on GCP has its service account's). No
    Google account exists here, so: an authorized-user file of no account. Nothing renders
    differently with real ones: they only sign the Cloud Run API calls, never made here."""
    adc = tmp_path / "adc.json"
    adc.write_text(
        '{"type": "authorized_user", "client_id": "none", "client_secret": '
        '"none", "refresh_token": "none", "quota_project_id": "my-project"}'
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))


def prefect_yaml() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return config


def deployment(name: str) -> dict[str, Any]:
    [found] = [d for d in prefect_yaml()["deployments"] if d["name"] == name]
    return found


def commit() -> str:
    """What the deployments' `get-commit-hash` step outputs: run its own script."""
    [step] = [
        s["prefect.deployments.steps.run_shell_script"]
        for s in deployment("daily-cloud-run")["build"]
        if "prefect.deployments.steps.run_shell_script" in s
    ]
    assert step["id"] == "get-commit-hash"
    return subprocess.run(
        step["script"].split(), cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def build_docker_image_without_docker(
    image_name: str, tag: str, dockerfile: str, **_: Any
) -> dict[str, Any]:
    """Stands in for prefect_docker's build step where no Docker engine exists (here): the
    same outputs (``image_name``, ``tag``, ``image``), nothing built.
    tests/scenarios/test_deployment.py deploys with it; the step's real arguments are checked
    in test_image_is_built_per_commit.
    """
    assert (ROOT / dockerfile).is_file()
    return {
        "image_name": image_name,
        "tag": tag,
        "image": f"{image_name}:{tag}",
        "image_id": None,
        "additional_tags": [],
    }


def push_docker_image_without_a_registry(image_name: str, tag: str, **_: Any) -> dict[str, Any]:
    """Stands in for prefect_docker's push step: no registry is reachable here."""
    return {
        "image_name": image_name,
        "tag": tag,
        "image": f"{image_name}:{tag}",
        "additional_tags": [],
    }


def deployed_job_variables(name: str) -> dict[str, Any]:
    """The deployment's job variables as `prefect deploy` stores them: templated with its
    build steps' outputs (the image built from this commit)."""
    from prefect.utilities.templating import apply_values

    image_name = prefect_yaml()["definitions"]["image_name"]
    outputs = {
        "get-commit-hash": {"stdout": commit()},
        "build-image": {
            "image_name": image_name,
            "tag": commit(),
            "image": f"{image_name}:{commit()}",
        },
    }
    variables: dict[str, Any] = apply_values(
        deployment(name)["work_pool"]["job_variables"], outputs
    )
    return variables


def render(worker: Any, job_variables: dict[str, Any]) -> Any:
    """The job configuration the worker would submit for a flow run of the deployment."""
    from prefect.client.schemas.objects import FlowRun

    template = worker.get_default_base_job_template()
    configuration = asyncio.run(
        worker.job_configuration.from_template_and_values(template, job_variables)
    )
    flow_run = FlowRun(id=uuid.uuid4(), name="render-test", flow_id=uuid.uuid4())
    configuration.prepare_for_flow_run(flow_run, worker_name="render-test")
    return configuration


def cloud_run_job(job_variables: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from prefect_gcp.workers.cloud_run_v2 import CloudRunWorkerV2

    configuration = render(CloudRunWorkerV2, job_variables)
    return configuration, configuration.job_body["template"]["template"]


def mebibytes(quantity: str) -> float:
    """Cloud Run's memory quantity (the worker's pattern: G, Gi, M, Mi) in MiB."""
    number, unit = re.fullmatch(r"(\d+)(Gi|G|Mi|M)", quantity).groups()  # type: ignore[union-attr]
    scale = {"Gi": 1024, "G": 1e9 / 2**20, "Mi": 1, "M": 1e6 / 2**20}[unit]
    return int(number) * scale


def test_the_cloud_run_job_outlives_the_flow_with_memory_account_and_egress() -> None:
    configuration, job = cloud_run_job(deployed_job_variables("daily-cloud-run"))
    assert job["timeout"] == "15300s" and configuration.timeout == 15300
    assert configuration.timeout >= FLOW_TIMEOUT + JOB_TIMEOUT_MARGIN_SECONDS
    [container] = job["containers"]
    assert container["resources"]["limits"]["memory"] == "2Gi"
    assert mebibytes(container["resources"]["limits"]["memory"]) >= 1024
    assert job["serviceAccount"] == SERVICE_ACCOUNT
    assert job["vpcAccess"] == {
        "connector": "projects/my-project/locations/australia-southeast1/connectors/partyhelp-mysql"
    }
    assert job["maxRetries"] == 0  # Prefect retries a run, not Cloud Run
    assert configuration.region == "australia-southeast1"
    image_name = prefect_yaml()["definitions"]["image_name"]
    assert container["image"] == f"{image_name}:{commit()}"
    assert re.fullmatch(r"[0-9a-f]{12}", commit())
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["PARTYHELP_SETTINGS_VARIABLE"] == "partyhelp_settings"
    assert env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == "gcs-bucket/partyhelp-results"
    assert env["PREFECT__FLOW_RUN_ID"]  # the worker's own variables are there too
    assert not [
        name
        for name in env
        if name.startswith("PARTYHELP_") and name != "PARTYHELP_SETTINGS_VARIABLE"
    ], "settings come from the Variable"
    assert not [name for name in env if SECRET_NAME.search(name)], env
    # The flow's command, as the worker runs it in the image.
    assert container["command"] == ["prefect", "flow-run", "execute"]


def test_prefect_gcp_defaults_would_break_the_flow() -> None:
    """Why the job variables are set: the same rendering without them."""
    configuration, job = cloud_run_job({"image": "any"})
    assert job["timeout"] == "600s" and configuration.timeout < FLOW_TIMEOUT
    assert job["containers"][0]["resources"]["limits"]["memory"] == "512Mi"
    assert "serviceAccount" not in job or not job["serviceAccount"]  # Compute Engine's
    assert "vpcAccess" not in job  # no route to a private MySQL


def test_the_docker_job_runs_the_commit_image_with_the_settings_variable() -> None:
    from prefect_docker.worker import DockerWorker

    configuration = render(DockerWorker, deployed_job_variables("daily"))
    image_name = prefect_yaml()["definitions"]["image_name"]
    assert configuration.image == f"{image_name}:{commit()}"
    assert configuration.image_pull_policy == "IfNotPresent"  # the tag names one commit
    env = configuration.env
    assert env["PARTYHELP_SETTINGS_VARIABLE"] == "partyhelp_settings"
    assert env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == "gcs-bucket/partyhelp-results"
    assert not [
        name
        for name in env
        if name.startswith("PARTYHELP_") and name != "PARTYHELP_SETTINGS_VARIABLE"
    ]
    assert not [name for name in env if SECRET_NAME.search(name)], env
    assert configuration.command == "prefect flow-run execute"


def test_image_is_built_per_commit_by_the_image_deployments_only() -> None:
    """prefect-docker's build and push steps, tagged with the commit, on `daily` and
    `daily-cloud-run` (not at the top level, so `daily-local` deploys with no Docker)."""
    config = prefect_yaml()
    assert "build" not in config and "push" not in config
    local = deployment("daily-local")
    assert "build" not in local and "push" not in local
    image_name = config["definitions"]["image_name"]
    for name in ("daily", "daily-cloud-run"):
        steps = [next(iter(step)) for step in deployment(name)["build"]]
        assert steps == [
            "partyhelp_pipeline.settings.check_deployment_settings",
            "prefect.deployments.steps.run_shell_script",
            "prefect_docker.deployments.steps.build_docker_image",
        ]
        build = deployment(name)["build"][2]["prefect_docker.deployments.steps.build_docker_image"]
        assert build["id"] == "build-image" and build["image_name"] == image_name
        assert build["tag"] == "{{ get-commit-hash.stdout }}"
        assert build["dockerfile"] == "Dockerfile" and build["platform"] == "linux/amd64"
        assert build["requires"].startswith("prefect-docker>=")
        [push] = deployment(name)["push"]
        assert (
            push["prefect_docker.deployments.steps.push_docker_image"]["tag"]
            == "{{ build-image.tag }}"
        )
        assert deployment(name)["work_pool"]["job_variables"]["image"] == "{{ build-image.image }}"
        check = deployment(name)["build"][0][
            "partyhelp_pipeline.settings.check_deployment_settings"
        ]
        assert check["variable"] == "partyhelp_settings"
    cloud_run = deployment("daily-cloud-run")
    assert (
        cloud_run["build"][0]["partyhelp_pipeline.settings.check_deployment_settings"][
            "job_timeout_seconds"
        ]
        == cloud_run["work_pool"]["job_variables"]["timeout"]
    )


def test_cloud_run_shares_schedule_limit_and_parameters_with_daily() -> None:
    daily, cloud_run = deployment("daily"), deployment("daily-cloud-run")
    for key in (
        "entrypoint",
        "parameters",
        "concurrency_limit",
        "schedules",
        "tags",
        "enforce_parameter_schema",
        "pull",
    ):
        assert cloud_run[key] == daily[key], key
    assert cloud_run["schedules"] == [{"cron": "0 3 * * *", "timezone": "Australia/Melbourne"}]
    assert cloud_run["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert cloud_run["work_pool"]["name"] == "partyhelp-cloud-run"
    assert (
        cloud_run["work_pool"]["job_variables"]["env"] == daily["work_pool"]["job_variables"]["env"]
    )
