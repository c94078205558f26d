"""The deployment: the Dockerfile and prefect.yaml checked statically (there is no Docker
engine here), `prefect deploy --all` against the local Prefect server, and the UI's Retry
of a failed run on a real process worker running the deployment: once through the API, as
the button's request, once by clicking the button in the real UI (headless chromium).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from partyhelp_pipeline.settings import declared_settings
from partyhelp_pipeline.spec import TABLES
from tests.conftest import READER_PASSWORD, ROOT, admin_connection, create_bucket, sync_environment
from tests.emulators import free_port, stack_sh
from tests.faultkit import outage_after_the_preflight
from tests.prefect_api import api_auth
from tests.scenarios.test_packaging import build_wheel, repository_files
from tests.scenarios.test_ui_retry import retry_in_the_ui
from tests.scripts.test_lock import read_lock

FLOW_NAME = "partyhelp-bigquery-sync"
ENTRYPOINT = "flows/partyhelp_sync.py:partyhelp_bigquery_sync"
POOLS = {
    "partyhelp-docker": "docker",
    "partyhelp-cloud-run": "cloud-run-v2",
    "partyhelp-local": "process",
}
DEPLOYMENTS = {
    "daily": "partyhelp-docker",
    "daily-cloud-run": "partyhelp-cloud-run",
    "daily-local": "partyhelp-local",
}
PARAMETERS = {
    "sync_date": None,
    "tables": None,
    "from_exports": False,
    "allow_row_drop": False,
    "replace_current": False,
    "allow_stale": False,
}
PREFECT = Path(sys.executable).with_name("prefect")
SETTINGS_VARIABLE = "partyhelp_settings"  # prefect.yaml's
# The production settings, in the Prefect Variable the image deployments' runs read.
PRODUCTION_SETTINGS = {
    "PARTYHELP_MYSQL_HOST": "mysql.partyhelp.internal",
    "PARTYHELP_MYSQL_USER": "partyhelp_reader",
    "PARTYHELP_MYSQL_PASSWORD_BLOCK": "partyhelp-mysql-password",
    "PARTYHELP_MYSQL_DATABASE": "partyhelp",
    "PARTYHELP_GCS_BUCKET": "partyhelp-exports",
    "PARTYHELP_BQ_PROJECT": "partyhelp-prod",
}
# What the deploying shell holds: none of it may reach a deployment.
SHELL_ENV = {
    "PARTYHELP_MYSQL_HOST": "from-the-deploying-shell",
    "PARTYHELP_GCS_BUCKET": "shell-bucket",
    "PARTYHELP_MYSQL_PORT": "3307",
}


# ------------------------------------------------------------------ Dockerfile, statically


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, ``(INSTRUCTION, arguments)``, grouped by stage."""
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(args.split())))
    return stages


def requirement_pins() -> dict[str, str]:
    """The versions the image installs: requirements.lock's, by canonical name."""
    return {name: entry.version for name, entry in read_lock("requirements.lock").items()}


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def workdir() -> str:
    return [a for i, a in final_stage() if i == "WORKDIR"][-1]


def context_copies(stage: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """A stage's COPY instructions from the build context (default: the final stage's), as
    ``(source, dest)`` with ``dest`` absolute (a relative one is under the WORKDIR then)."""
    copies, cwd = [], "/"
    for instruction, args in final_stage() if stage is None else stage:
        if instruction == "WORKDIR":
            cwd = os.path.join(cwd, args)
        if instruction == "COPY" and "--from=" not in args:
            *sources, dest = [a for a in args.split() if not a.startswith("--")]
            dest = os.path.join(cwd, dest)  # keeps a trailing "/" (a folder)
            copies += [(s, dest) for s in sources]
    return copies


def test_base_image_is_the_official_image_of_the_pinned_prefect() -> None:
    prefect = requirement_pins()["prefect"]
    bases = [args.split()[0] for stage in dockerfile_stages() for i, args in stage if i == "FROM"]
    assert len(bases) == 2  # a builder and the runtime image
    # The tag, or for a release the tag with its digest (the Dockerfile says how to read it):
    # both stages on the same image.
    [base] = set(bases)
    assert re.fullmatch(
        rf"prefecthq/prefect:{re.escape(prefect)}-python3\.11"
        r"(@sha256:[0-9a-f]{64})?",
        base,
    ), base
    assert "docker buildx imagetools inspect" in (ROOT / "Dockerfile").read_text()
    prefect_yaml = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert prefect_yaml["prefect-version"] == prefect


def test_image_installs_exactly_the_lock_and_the_project() -> None:
    """requirements.lock's wheels, every download checked against the lock's hashes, then
    the project's own wheel with the extras the lock holds (like `pip install '.[fast,dask]'`),
    both built in the builder and installed offline, then `pip check`; no PYTHONPATH."""
    builder, final = dockerfile_stages()
    build_runs = [a for i, a in builder if i == "RUN"]
    assert ("COPY", "requirements.lock /tmp/requirements.lock") in builder
    assert (
        "pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r /tmp/requirements.lock"
    ) in build_runs
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /dist /src" in build_runs
    assert context_copies(builder)[-1][1] == "/src/flows/"  # the project's wheel comes last
    installs = [a for i, a in final if i == "RUN" and "pip install" in a]
    assert len(installs) == 2, "the runtime image installs the lock's wheels, then the project"
    assert installs[0] == (
        "--mount=type=bind,from=builder,source=/wheels,target=/wheels pip "
        "install --no-cache-dir --no-index --no-deps /wheels/*.whl"
    )
    assert installs[1] == (
        "--mount=type=bind,from=builder,source=/dist,target=/dist pip install"
        " --no-cache-dir --no-index --find-links /dist "
        '"partyhelp-bigquery-sync[fast,dask]" && pip check'
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "partyhelp-bigquery-sync"
    # The extras installed are every extra the project declares, and the lock holds them.
    assert set(project["optional-dependencies"]) == {"fast", "dask"}
    assert {"mysqlclient", "isal", "prefect-dask"} <= set(requirement_pins())
    assert not any("PYTHONPATH" in a for i, a in final if i in ("ENV", "ARG", "RUN"))


def test_compiler_and_headers_stay_in_the_builder() -> None:
    builder, final = dockerfile_stages()

    def apt_packages(stage: list[tuple[str, str]]) -> set[str]:
        runs = " ".join(a for i, a in stage if i == "RUN")
        found = re.findall(
            r"apt-get install -y --no-install-recommends ([\w.+ -]+?)(?: &&|$)", runs
        )
        return {p for group in found for p in group.split()}

    assert {"libmariadb-dev", "pkg-config"} <= apt_packages(builder)
    assert apt_packages(final) == {"libmariadb3"}  # the runtime library of mysqlclient only


def test_runs_as_a_non_root_user() -> None:
    users = [a for i, a in final_stage() if i == "USER"]
    assert users, "the image must switch to a non-root user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    created = " ".join(a for i, a in final_stage() if i == "RUN" and "useradd" in a)
    assert f"--uid {user}" in created or re.search(rf"useradd .*\b{user}\b", created)
    # The last instruction that changes the user is that USER: nothing runs as root after it.
    assert [i for i, _ in final_stage()][-1] == "USER"


def test_no_secret_is_baked_in() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for instruction, args in final_stage() + dockerfile_stages()[0]:
        if instruction in ("ENV", "ARG"):
            assert not re.search(r"PASSWORD|SECRET|TOKEN|SALT|KEY|CREDENTIAL", args, re.I), args
    assert READER_PASSWORD not in text
    assert "PARTYHELP_" not in text  # every setting comes from the deployment at run time


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else re.escape(part).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            for part in re.split(r"(\*\*)", pattern)
        )
        rules.append((negate, re.compile(regex)))
    return rules


def in_build_context(path: str) -> bool:
    """Whether ``.dockerignore`` lets ``path`` (relative to the repo) into the build context.

    Docker's rule: the last pattern matching the path, or one of its parent folders, wins.
    """
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    included = True
    for negate, regex in _dockerignore_rules():
        if any(regex.fullmatch(c) for c in candidates):
            included = negate
    return included


def test_build_context_is_only_what_the_image_copies() -> None:
    copied = {s.rstrip("/") for stage in dockerfile_stages() for s, _ in context_copies(stage)}
    assert copied == {
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "partyhelp_pipeline",
        "tasks",
        "flows",
        "flows/partyhelp_sync.py",
    }
    context = {p for p in repository_files() if in_build_context(p)}
    assert context == {p for p in repository_files() if p in copied or p.split("/")[0] in copied}
    for stray in (
        ".git/config",
        ".venv/bin/python",
        ".env",
        "service-account.json",
        "tests/conftest.py",
        "scripts/setup.py",
        "prefect.yaml",
        "sql/mysql/x.sql",
        "flows/__pycache__/partyhelp_sync.cpython-311.pyc",
        "tasks/x.pyc",
        "build/lib/tasks/old_module.py",
    ):
        assert not in_build_context(stray), stray


def _run_copies(stage: list[tuple[str, str]], root: Path) -> None:
    """Carry out a stage's COPY lines from the build context, with ``root`` as its ``/``."""
    files = [p for p in repository_files() if in_build_context(p)]
    for source, dest in context_copies(stage):
        source, target = source.rstrip("/"), root / dest.lstrip("/")
        for path in files:
            if path == source:  # a file: to dest, or into dest/
                out = target / Path(path).name if dest.endswith("/") else target
            elif path.startswith(source + "/"):  # a folder: its content into dest
                out = target / Path(path).relative_to(source)
            else:
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, out)


def _image_tree(root: Path) -> tuple[Path, Path]:
    """The image, simulated without Docker: the builder's COPY lines and its wheel of the
    project (/src -> /dist); the runtime's COPY lines, and that wheel installed with
    ``pip install --target``. Returns the WORKDIR and the project's site-packages (the
    image's also holds requirements.lock's packages: here .venv's stand in for them).
    """
    builder, final = dockerfile_stages()
    _run_copies(builder, root / "builder")
    wheel = build_wheel(root / "builder" / "src", root / "builder" / "dist")
    _run_copies(final, root / "image")
    site = root / "image" / "site-packages"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "image" / workdir().lstrip("/"), site


def test_image_holds_everything_the_entrypoint_imports(tmp_path: Path) -> None:
    """Load the flow the way a worker in the image does: the entrypoint file in the WORKDIR,
    everything it imports from the installed project, nothing from this checkout."""
    code, site = _image_tree(tmp_path)
    entry_file = ENTRYPOINT.split(":")[0]
    assert sorted(str(p.relative_to(code)) for p in code.rglob("*") if p.is_file()) == [
        entry_file
    ], "the WORKDIR holds the entrypoint file only"
    assert (code / entry_file).read_bytes() == (site / entry_file).read_bytes()
    assert (site / "bin" / "partyhelp-sync").is_file()
    third_party = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    probe = f"""
import json, sys
# -S: no .pth files run, so .venv's editable install of this checkout stays out; the project
# comes from the wheel installed in {site.name}/, its dependencies from .venv.
sys.path[:0] = [{str(site)!r}]
sys.path += {third_party!r}
from prefect.flows import load_flow_from_entrypoint
flow = load_flow_from_entrypoint({ENTRYPOINT!r})
files = {{n: getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items())}}
print(json.dumps({{"flow": flow.name, "flow_file": flow.fn.__code__.co_filename,
                  "first_party": {{n: f for n, f in files.items() if n.split(".")[0] in
                                  ("partyhelp_pipeline", "flows", "tasks", "scripts", "tests")}},
                  "from_repo": [n for n, f in files.items() if f.startswith({str(ROOT) + "/"!r})
                                and not f.startswith({sys.prefix + "/"!r})]}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["flow"] == FLOW_NAME
    assert report["flow_file"] == str(code / entry_file)
    assert report["from_repo"] == [], "imported from this checkout, not the image"
    first_party = report["first_party"]
    assert {
        "flows",
        "flows.table_pipeline",
        "tasks",
        "tasks.mysql_to_gcs",
        "tasks.gcs_to_bigquery",
        "partyhelp_pipeline.spec",
        "partyhelp_pipeline.warehouse",
        "partyhelp_pipeline.export",
    } <= set(first_party)
    # Every first-party module, `flows` itself included (a flows/ in the WORKDIR without
    # __init__.py must not shadow it), comes from the installed wheel.
    outside = {n: f for n, f in first_party.items() if not f.startswith(f"{site}/")}
    assert outside == {}, "first-party modules not from the installed project"
    assert not any(n.split(".")[0] in ("scripts", "tests") for n in first_party)


# ------------------------------------------------------------------ prefect.yaml, statically


def prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def test_prefect_yaml_agrees_with_the_dockerfile_and_the_code() -> None:
    config = prefect_yaml()
    deployments = {d["name"]: d for d in config["deployments"]}
    assert {n: d["work_pool"]["name"] for n, d in deployments.items()} == DEPLOYMENTS
    assert {d["entrypoint"] for d in deployments.values()} == {ENTRYPOINT}
    path, function = ENTRYPOINT.split(":")
    assert f"def {function}(" in (ROOT / path).read_text()
    image_name = config["definitions"]["image_name"]
    assert image_name.endswith("/partyhelp-bigquery-sync")  # a repository of a registry
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    labels = " ".join(a for i, a in final_stage() if i == "LABEL")
    assert f'org.opencontainers.image.version="{version}"' in labels
    for name in ("daily", "daily-cloud-run"):  # the image's code, in its WORKDIR
        [pull] = deployments[name]["pull"]
        assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == workdir()
    # (the build and push steps: tests/scenarios/test_cloud_run.py)
    assert "pull" not in deployments["daily-local"]  # default: this checkout, where deployed


def test_no_setting_is_taken_from_the_deploying_shell() -> None:
    """No `{{ $NAME }}` anywhere: an unset one would be stored empty, silently. The image
    deployments' env names the settings Variable and the results block, nothing else."""
    text = (ROOT / "prefect.yaml").read_text()
    assert not re.search(r"\{\{\s*\$", text)
    declared = {setting.variable for setting in declared_settings()}
    for deployment in prefect_yaml()["deployments"]:
        env = deployment["work_pool"].get("job_variables", {}).get("env", {})
        for name in env:
            assert name.startswith("PREFECT_") or name in declared, f"{name} is read nowhere"
            assert not re.search(r"PASSWORD$|SALT$|SECRET", name), f"{name} holds a secret"
        if deployment["name"] != "daily-local":
            assert env == {
                "PARTYHELP_SETTINGS_VARIABLE": SETTINGS_VARIABLE,
                "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "gcs-bucket/partyhelp-results",
            }


# ------------------------------------------------------------------ on the Prefect server


def prefect_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    result = subprocess.run(
        [str(PREFECT), "--no-prompt", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def production_settings_in_prefect(values: dict[str, str] | None = None) -> None:
    """What the operator's setup leaves on the Prefect server for the image deployments:
    the settings Variable (written by scripts/setup.py's own function) and the Secret block
    it names (kept if it exists)."""
    from prefect.blocks.system import Secret

    from scripts.setup import setup_settings_variable

    values = dict(PRODUCTION_SETTINGS if values is None else values)
    setup_settings_variable(SETTINGS_VARIABLE, values)
    block = PRODUCTION_SETTINGS["PARTYHELP_MYSQL_PASSWORD_BLOCK"]
    try:
        Secret.load(block)
    except ValueError:  # no such block yet
        Secret(value="not-a-real-password").save(block)


# prefect-docker's steps, and what stands in for them where there is no Docker engine and
# no registry (here): the same outputs, nothing built or pushed (tests/scenarios/test_cloud_run.py).
DOCKER_STAND_INS = {
    "prefect_docker.deployments.steps.build_docker_image": (
        "tests.scenarios.test_cloud_run.build_docker_image_without_docker"
    ),
    "prefect_docker.deployments.steps.push_docker_image": (
        "tests.scenarios.test_cloud_run.push_docker_image_without_a_registry"
    ),
}


def deploy_without_docker(*args: str, env: dict[str, str], folder: Path) -> str:
    """`prefect deploy ARGS` of prefect.yaml with its two Docker steps replaced by stand-ins;
    every other step runs for real (the settings check, the commit's tag)."""
    config = prefect_yaml()
    for deployment in config["deployments"]:
        for action in ("build", "push"):
            if action in deployment:
                deployment[action] = [
                    {DOCKER_STAND_INS.get(fqn, fqn): inputs for fqn, inputs in step.items()}
                    for step in deployment[action]
                ]
    folder.mkdir(parents=True, exist_ok=True)
    prefect_file = folder / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return prefect_cli(
        "deploy", *args, "--prefect-file", str(prefect_file), env={**env, "PYTHONPATH": str(ROOT)}
    )  # the stand-ins' module


def commit_tag() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def deployed(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The work pools, the settings Variable and `prefect deploy --all`, as
    docs/OPERATIONS.md says, from a shell whose PARTYHELP_* settings must not be copied;
    read back.

    The deployments and pools have fixed names on a server other test sessions on this
    machine share: a file lock keeps two sessions from deploying and running them at once.
    """
    from prefect.client.orchestration import get_client

    lock_path = Path(tempfile.gettempdir()) / "partyhelp-prefect-deployments.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        for pool, pool_type in POOLS.items():
            prefect_cli("work-pool", "create", pool, "--type", pool_type, "--overwrite")
        production_settings_in_prefect()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
        output = deploy_without_docker(
            "--all", env={**env, **SHELL_ENV}, folder=tmp_path_factory.mktemp("deploy")
        )
        with get_client(sync_client=True) as client:
            deployments = {
                name: client.read_deployment_by_name(f"{FLOW_NAME}/{name}") for name in DEPLOYMENTS
            }
            pools = {name: client.read_work_pool(name) for name in POOLS}
        yield {
            "deployments": deployments,
            "pools": pools,
            "output": output,
            "seconds": time.monotonic() - started,
        }


def test_deploy_all_reads_back_as_declared(deployed: dict[str, Any]) -> None:
    deployments, pools = deployed["deployments"], deployed["pools"]
    assert {name: pool.type for name, pool in pools.items()} == POOLS
    for name, deployment in deployments.items():
        assert deployment.work_pool_name == DEPLOYMENTS[name]
        assert deployment.entrypoint == ENTRYPOINT
        assert deployment.parameters == PARAMETERS
        assert deployment.enforce_parameter_schema is True
        assert list(deployment.parameter_openapi_schema["properties"]) == list(PARAMETERS)
        [schedule] = deployment.schedules
        assert schedule.schedule.cron == "0 3 * * *"
        assert schedule.schedule.timezone == "Australia/Melbourne"
        assert schedule.active is (name != "daily-local")  # the local variant runs on demand
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
        assert deployment.global_concurrency_limit.limit == 1
    daily, cloud_run = deployments["daily"], deployments["daily-cloud-run"]
    local = deployments["daily-local"]
    image = f"{prefect_yaml()['definitions']['image_name']}:{commit_tag()}"
    env = {
        "PARTYHELP_SETTINGS_VARIABLE": SETTINGS_VARIABLE,
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "gcs-bucket/partyhelp-results",
    }
    assert daily.job_variables == {"image": image, "image_pull_policy": "IfNotPresent", "env": env}
    assert cloud_run.job_variables == {
        "image": image,
        "env": env,
        "region": "australia-southeast1",
        "timeout": 15300,
        "memory": "2Gi",
        "max_retries": 0,
        "service_account_name": "partyhelp-sync@my-project.iam.gserviceaccount.com",
        "vpc_connector_name": "projects/my-project/locations/australia-southeast1/"
        "connectors/partyhelp-mysql",
    }
    for deployment in (daily, cloud_run):
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": workdir()}}
        ]
    assert not local.job_variables  # the local worker's own environment applies
    assert local.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    stored = json.dumps([d.model_dump(mode="json") for d in deployments.values()])
    assert READER_PASSWORD not in stored
    for value in SHELL_ENV.values():  # nothing of the deploying shell's settings
        assert value not in stored
    assert (
        f"settings: Prefect Variable '{SETTINGS_VARIABLE}' holds "
        f"{len(PRODUCTION_SETTINGS)} valid settings" in deployed["output"]
    )


def test_the_deployed_cloud_run_job_renders_through_the_worker(deployed: dict[str, Any]) -> None:
    """The stored job variables and the server's copy of the pool's template, through
    prefect-gcp's own configuration class, as its worker builds a job."""
    from prefect_gcp.workers.cloud_run_v2 import CloudRunWorkerV2

    from tests.scenarios.test_cloud_run import FLOW_TIMEOUT, render

    pool = deployed["pools"]["partyhelp-cloud-run"]
    deployment = deployed["deployments"]["daily-cloud-run"]

    class ServerTemplate(CloudRunWorkerV2):
        @classmethod
        def get_default_base_job_template(cls) -> dict[str, Any]:
            return dict(pool.base_job_template)

    with pytest.MonkeyPatch.context() as patch:  # prefect-gcp reads the worker's ADC
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_no_account_adc()))
        job = render(ServerTemplate, dict(deployment.job_variables)).job_body
    body = job["template"]["template"]
    assert int(body["timeout"].removesuffix("s")) > FLOW_TIMEOUT
    assert body["containers"][0]["resources"]["limits"]["memory"] == "2Gi"
    assert body["serviceAccount"] == "partyhelp-sync@my-project.iam.gserviceaccount.com"
    assert body["vpcAccess"]["connector"].endswith("/connectors/partyhelp-mysql")
    assert body["containers"][0]["image"].endswith(f":{commit_tag()}")


def _no_account_adc() -> Path:
    """Application default credentials of no account (see tests/scenarios/test_cloud_run.py)."""
    path = Path(tempfile.mkdtemp()) / "adc.json"
    path.write_text(
        '{"type": "authorized_user", "client_id": "none", "client_secret": '
        '"none", "refresh_token": "none", "quota_project_id": "my-project"}'
    )
    return path


def test_a_deploy_is_refused_naming_a_required_setting_the_variable_lacks(
    deployed: dict[str, Any],
) -> None:
    """The real prefect.yaml: its settings check fails before any Docker step, even though
    the deploying shell holds the missing setting."""
    from prefect.client.orchestration import get_client

    incomplete = {k: v for k, v in PRODUCTION_SETTINGS.items() if k != "PARTYHELP_MYSQL_HOST"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
    try:
        production_settings_in_prefect(incomplete)
        result = subprocess.run(
            [str(PREFECT), "--no-prompt", "deploy", "--name", "daily-cloud-run"],
            cwd=ROOT,
            env={**env, **SHELL_ENV},
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        production_settings_in_prefect()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert (
        "deploy refused: Prefect Variable 'partyhelp_settings': PARTYHELP_MYSQL_HOST is "
        "not set; it is required (see README, Configuration); fix it with python -m "
        "scripts.setup --settings-variable partyhelp_settings"
    ) in output, output[-3000:]
    assert "build_docker_image" not in output  # stopped before building
    with get_client(sync_client=True) as client:
        after = client.read_deployment_by_name(f"{FLOW_NAME}/daily-cloud-run")
    assert after.updated == deployed["deployments"]["daily-cloud-run"].updated


# ------------------------------------------------------------------ Retry from the UI


@contextlib.contextmanager
def private_bigquery(data: Path) -> Iterator[tuple[str, Callable[[str], None]]]:
    """A BigQuery emulator of this test's own, run by ``scripts/stack.sh`` on its own ports
    (reading the session's fake-gcs-server), so that stopping it takes no one else's down.

    Yields its address and ``stack(command)``, e.g. ``stack("stop-bigquery")``.
    """
    port = free_port()
    gcs_port = os.environ["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1].strip("/")
    env = {
        **os.environ,
        "PARTYHELP_BQ_PORT": str(port),
        "PARTYHELP_GCS_PORT": gcs_port,
        "PARTYHELP_BQ_GRPC_PORT": str(free_port()),
        "PARTYHELP_STACK_DATA": str(data),
    }

    def stack(command: str) -> None:
        stack_sh(command, env)

    stack("start-bigquery")
    try:
        yield f"http://127.0.0.1:{port}", stack
    finally:
        stack("stop-bigquery")


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def table_of(task_name: str) -> str | None:
    """``export-ph_leads-chunk-0001`` -> ``ph_leads``; None for tasks of no one table."""
    match = re.match(r"(?:plan|export|manifest|load)-(ph_[a-z_]+?)(?:-chunk-\d+)?$", task_name)
    return match.group(1) if match else None


class RunWatcher:
    """Reads one flow run and its task runs, attempt by attempt, through the Prefect API."""

    def __init__(self, client: Any, flow_run_id: Any) -> None:
        self.client, self.id = client, flow_run_id

    def flow_run(self) -> Any:
        return self.client.read_flow_run(self.id)

    def wait_final(self, timeout: float = 240) -> Any:
        return wait_for(
            f"flow run {self.id} to finish",
            lambda: (run := self.flow_run()).state and run.state.is_final() and run,
            timeout,
        )

    def attempt(self, number: int, timeout: float = 60) -> dict[str, list[Any]]:
        """``{"export": [...], "load": [...], ...}`` of one attempt, once every task is final.

        Task states reach the API a few seconds after the flow run's final state.
        """
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        def read() -> dict[str, list[Any]] | None:
            every = self.client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[self.id])), limit=200
            )
            assert len(every) < 200, "more task runs than one page"
            runs = [r for r in every if r.flow_run_run_count == number]
            kinds: dict[str, list[Any]] = {}
            for run in runs:
                if table_of(run.name):
                    kinds.setdefault(run.name.split("-")[0], []).append(run)
            complete = all(
                {table_of(r.name) for r in kinds.get(k, [])} == set(TABLES)
                for k in ("export", "load")
            )
            final = all(r.state and r.state.is_final() for r in runs)
            return kinds if complete and final else None

        return wait_for(f"task runs of attempt {number}", read, timeout)


def name_states(runs: list[Any]) -> list[tuple[str, str]]:
    """Every ``(task run name, state name)``, sorted: a name may occur more than once."""
    return sorted((r.name, r.state.name) for r in runs)


def states(runs: list[Any]) -> set[str]:
    """The state names of every run (none hidden behind another run of the same name)."""
    return {state for _, state in name_states(runs)}


@contextlib.contextmanager
def locked_account(user: str) -> Iterator[None]:
    """The MySQL user cannot log in (error 4151) until the block ends."""

    def alter(action: str) -> None:
        with admin_connection() as connection, connection.cursor() as cursor:
            for host in ("localhost", "127.0.0.1", "%"):
                cursor.execute(f"ALTER USER %s@%s ACCOUNT {action}", (user, host))

    alter("LOCK")
    try:
        yield
    finally:
        alter("UNLOCK")


# What the Retry button of the UI that Prefect 3.9.1 serves by default sends (seen clicked in
# headless chromium; ../shared/LOCAL_STACK.md). Not forced: the server's orchestration rules
# decide, as for the button. test_retry_from_the_ui_redoes_only_what_failed compares it with
# what the button really sends.
UI_RETRY_REQUEST = {
    "state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"},
    "force": False,
}


def retry_like_the_ui(flow_run_id: Any) -> None:
    """Retry through the API: the request the UI's Retry button sends."""
    response = httpx.post(
        f"{os.environ['PREFECT_API_URL'].rstrip('/')}/flow_runs/{flow_run_id}/set_state",
        json=UI_RETRY_REQUEST,
        auth=api_auth(),
        timeout=30,
    )
    response.raise_for_status()
    assert response.json()["status"] == "ACCEPT", response.text


@contextlib.contextmanager
def process_worker(queue: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """`prefect worker start` on the local pool, polling only this test's work queue."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

    pool, name = "partyhelp-local", f"test-worker-{queue}"
    with get_client(sync_client=True) as client:
        fresh = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
        others = [
            w.name
            for w in client.read_workers_for_work_pool(
                pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
            )
            if w.last_heartbeat_time and w.last_heartbeat_time > fresh
        ]
        if others:
            pytest.fail(
                f"worker(s) {others} poll every queue of {pool}: they would take this "
                "test's flow runs with their own settings. Stop them and rerun."
            )
        client.create_work_queue(name=queue, work_pool_name=pool)
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                str(PREFECT),
                "worker",
                "start",
                "--pool",
                pool,
                "--work-queue",
                queue,
                "--name",
                name,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield name
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)  # the worker's own process group
            worker.wait(timeout=10)
        base = f"{os.environ['PREFECT_API_URL'].rstrip('/')}/work_pools/{pool}"
        httpx.delete(f"{base}/workers/{name}", auth=api_auth(), timeout=30)
        httpx.delete(f"{base}/queues/{queue}", auth=api_auth(), timeout=30)


def source_row_counts(database: str) -> dict[str, int]:
    from tests.oracle import expected_tables

    with admin_connection(database) as connection:
        return {
            t: len(rows)
            for t, rows in expected_tables(connection, dt.date.today()).items()
            if t in TABLES
        }


def bigquery_row_counts(settings: Any) -> dict[str, int]:
    from partyhelp_pipeline.clients import bigquery_client

    client = bigquery_client(settings)
    return {
        t: next(
            iter(client.query(f"SELECT COUNT(*) AS n FROM {settings.quoted_table_ref(t)}").result())
        )["n"]
        for t in TABLES
    }


def move_objects(bucket: Any, names: list[str], suffix_from: str, suffix_to: str) -> None:
    for name in names:
        blob = bucket.blob(name + suffix_from)
        bucket.copy_blob(blob, bucket, name + suffix_to)
        blob.delete()


@pytest.mark.slow
def test_retry_from_the_ui_redoes_only_what_failed(
    deployed: dict[str, Any], source_db: dict, tmp_path: Path
) -> None:
    """A real outage fails the loads; Retry (same flow run) skips what had completed.

    1. BigQuery (an emulator of the test's own, so no other test loses it) is stopped for
       real once the run's pre-flight has found it up: the exports complete, every load
       fails, the run is Failed.
    2. BigQuery is back, but one table's parts are hidden in GCS and the sync user is
       locked out of MySQL: Retry through the API (the button's request). The exports are
       Cached, four loads complete, that table's load refuses its damaged export and the
       re-export is refused: Failed.
    3. MySQL lets the user in again: Retry in the UI, in headless chromium (the run's page,
       Retry in its header, Retry in the dialog), which sends what step 2 sent. Exports and
       the four completed loads are Cached, that table alone is exported again and loaded,
       the run is Completed and every table holds the source's rows.
    4. A new run of the deployment exports afresh: nothing of the first run's is reused.
    """
    from prefect.client.orchestration import get_client

    from partyhelp_pipeline.settings import load_settings

    token = os.urandom(4).hex()
    bucket_name, dataset = f"ph-retry-{token}", f"ph_retry_{token}"
    create_bucket(bucket_name)
    with contextlib.ExitStack() as stack:
        bigquery_url, stack_sh = stack.enter_context(private_bigquery(tmp_path / "stack"))
        sync_env = sync_environment(
            source_db["database"],
            source_db["user"],
            bucket_name,
            dataset,
            BIGQUERY_EMULATOR_HOST=bigquery_url,
            PARTYHELP_TASK_RETRIES="3",
            PARTYHELP_RETRY_DELAY_SECONDS="0.5",
            PARTYHELP_BQ_RETRY_SECONDS="2",
            PARTYHELP_CHUNK_ROWS=str(10**12),
        )  # one export task a table
        settings = load_settings({**os.environ, **sync_env})
        storage = tmp_path / "results"
        worker_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PARTYHELP_") and k != "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"
        }
        worker_env.update(
            sync_env, PREFECT_LOCAL_STORAGE_PATH=str(storage), PREFECT_WORKER_QUERY_SECONDS="1"
        )
        client = stack.enter_context(get_client(sync_client=True))
        stack.enter_context(process_worker(f"retry-{token}", worker_env, tmp_path / "worker.log"))
        run_the_retry_scenario(
            client,
            deployed["deployments"]["daily-local"],
            token,
            settings,
            storage,
            stack_sh,
            source_db["database"],
            source_db["user"],
            tmp_path / "worker.log",
            tmp_path / "screenshots",
        )


def run_the_retry_scenario(
    client: Any,
    deployment: Any,
    token: str,
    settings: Any,
    storage: Path,
    stack_sh: Callable[[str], None],
    database: str,
    user: str,
    worker_log: Path,
    screenshots: Path,
) -> None:
    from partyhelp_pipeline.warehouse.target import ensure_dataset, open_warehouse

    assert client.read_server_default_result_storage().default_result_storage_block_id is None, (
        "the server has a default result storage: local runs would not use theirs"
    )
    # The dataset exists before the first run, as scripts/setup.py leaves it in production,
    # made with a setup's patience: the run's 2-second window is for the outage below, and a
    # busy emulator may take longer than that to answer this first call.
    ensure_dataset(open_warehouse(settings.model_copy(update={"bq_retry_seconds": 60.0})))
    # 1. BigQuery goes down for real once the run's pre-flight has found it up (down from
    # the start, the run fails before exporting: tests/scenarios/test_outage.py): the exports
    # complete, every load fails.
    sources = [spec.source_table for spec in TABLES.values()]
    try:
        with outage_after_the_preflight(
            database, user, sources, lambda: stack_sh("stop-bigquery")
        ) as outage:
            run = client.create_flow_run_from_deployment(
                deployment.id, work_queue_name=f"retry-{token}"
            )
            watcher = RunWatcher(client, run.id)
            first = watcher.wait_final()
    finally:
        stack_sh("start-bigquery")  # whatever happened
    assert outage == {"stopped": True}, worker_log.read_text()[-5000:]
    assert first.state.is_failed(), (first.state, worker_log.read_text()[-5000:])
    assert any(t in first.state.message for t in TABLES), first.state.message
    attempt = watcher.attempt(1)
    assert states(attempt["export"]) == {"Completed"}
    assert {r.state.type.value for r in attempt["load"]} == {"FAILED"}
    assert list(storage.iterdir()), "task results must persist in PREFECT_LOCAL_STORAGE_PATH"

    retry_through_the_api_while_mysql_refuses(watcher, settings, user)
    retry_in_the_ui_and_complete(watcher, settings, database, screenshots)

    # 4. A new daily run never reuses the cached results of an earlier run.
    new = client.create_flow_run_from_deployment(deployment.id, work_queue_name=f"retry-{token}")
    fresh = RunWatcher(client, new.id)
    assert fresh.wait_final().state.is_completed()
    attempt = fresh.attempt(1)
    assert states(attempt["export"]) == {"Completed"}
    assert states(attempt["load"]) == {"Completed"}


def retry_through_the_api_while_mysql_refuses(
    watcher: RunWatcher, settings: Any, user: str
) -> None:
    """Step 2: BigQuery is back; one table's export parts are hidden (its export is damaged)
    and the sync user is locked out of MySQL: Retry through the API, with the button's
    request. The four other loads complete from the cached exports; ph_venues' load refuses
    the damaged export, its re-export from MySQL is refused too: Failed, naming ph_venues.
    """
    from partyhelp_pipeline.clients import storage_client

    bucket = storage_client(settings).bucket(settings.gcs_bucket)
    parts = [
        b.name
        for b in bucket.list_blobs(prefix="exports/")
        if "/ph_venues/" in b.name and b.name.endswith(".avro")
    ]
    assert parts
    move_objects(bucket, parts, "", ".hidden")
    with locked_account(user):
        retry_like_the_ui(watcher.id)
        second = watcher.wait_final()
    assert second.id == watcher.id and second.state.is_failed(), second.state
    assert re.search(
        r"ph_venues: part gs://\S+ listed in gs://\S+ is missing; exporting it "
        r"again failed: ph_venues: cannot connect to MySQL .* locked",
        second.state.message,
    ), second.state.message
    attempt = watcher.attempt(2)
    assert states(attempt["export"]) == {"Cached"}
    assert states(attempt["manifest"]) == {"Cached"}
    assert name_states(attempt["plan"]) == sorted(
        [(f"plan-{t}", "Cached") for t in TABLES] + [("plan-ph_venues", "Failed")]
    )
    loads = {table_of(r.name): r.state.name for r in attempt["load"]}
    assert loads.pop("ph_venues") == "Failed"
    # (a fresh emulator's first concurrent loads may conflict; retries heal that)
    assert set(loads.values()) == {"Completed"}, (loads, second.state.message)


def retry_in_the_ui_and_complete(
    watcher: RunWatcher, settings: Any, database: str, screenshots: Path
) -> None:
    """Step 3: MySQL lets the user in again (the parts stay hidden): an operator retries
    the failed run in the Prefect UI, in headless chromium, and the retry completes.
    Everything that had completed is Cached; ph_venues alone is exported again and loaded.
    """
    failed = watcher.flow_run()
    assert failed.state.is_failed() and failed.run_count == 2, failed.state
    sent = retry_in_the_ui(failed, screenshots)
    assert sent == UI_RETRY_REQUEST, "the API-level retry must send what the button sends"
    third = watcher.wait_final()
    assert third.id == watcher.id and third.state.is_completed(), third.state
    assert third.run_count == 3
    attempt = watcher.attempt(3)
    assert name_states(attempt["export"]) == sorted(
        [(f"export-{t}", "Cached") for t in TABLES] + [("export-ph_venues", "Completed")]
    )
    assert name_states(attempt["load"]) == sorted(
        [(f"load-{t}", "Cached") for t in TABLES if t != "ph_venues"]
        + [("load-ph_venues", "Failed"), ("load-ph_venues", "Completed")]
    )
    assert bigquery_row_counts(settings) == source_row_counts(database)
