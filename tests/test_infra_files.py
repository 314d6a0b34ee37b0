"""infra/ against the code: no Docker engine runs where these tests run, so the container files are
checked by reading them. Every path they copy or mount, module they run, CLI command and flag,
deployment entrypoint and COLLECTOR_/PREFECT_ variable they name must exist in this checkout:
renaming a module, a flag or a setting fails here instead of in someone's container."""

from __future__ import annotations

import atexit
import functools
import importlib
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from collector.config.settings import Settings, load_settings
from flows.stack.api import POOL

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
BIN = Path(sys.executable).parent
HELP_HOME = tempfile.mkdtemp(prefix="infra-help-")  # PREFECT_HOME of the `--help` runs
atexit.register(shutil.rmtree, HELP_HOME, True)
# Variables of the base image, pip and Python, not ours to check against the code.
FOREIGN_ENV = {"PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "DO_NOT_TRACK",
               "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


# --------------------------------------------------------------------------- parsing


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for line in (INFRA / "Dockerfile").read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def docker_env(args: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in shlex.split(args))


def compose() -> dict:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def docker_yaml() -> dict:
    return yaml.safe_load((INFRA / "prefect.docker.yaml").read_text())


def readme_commands() -> list[list[str]]:
    """The shell commands of infra/README.md's ```bash blocks (continuations joined, comments cut)."""
    text = (INFRA / "README.md").read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(shlex.split(line))
    return cmds


# --------------------------------------------------------------------------- what the code has


@functools.cache
def help_text(*cmd: str) -> str:
    """``<cmd> --help`` (exit 0 or the command does not exist)."""
    r = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={"PATH": f"{BIN}:/usr/bin:/bin", "PREFECT_HOME": HELP_HOME,
                            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "COLUMNS": "200"})
    assert r.returncode == 0, f"`{' '.join(cmd)} --help` failed: {r.stderr[-400:]}"
    return r.stdout


def check_command(argv: list[str]) -> None:
    """A ``prefect ...``, ``python -m ...`` or ``collector ...`` command line: the command exists
    and knows every ``--flag`` it is given."""
    if argv[:2] == ["python", "-m"]:
        mod = argv[2]
        try:
            importlib.import_module(mod)  # it must import, not only exist
        except ModuleNotFoundError as e:
            raise AssertionError(f"python -m {mod}: no such module ({e})") from None
        head, rest = (str(BIN / "python"), "-m", mod), argv[3:]
    elif argv[0] in ("prefect", "collector"):
        words = []
        for a in argv[1:]:
            if a.startswith("-") or "/" in a or "=" in a or "'" in a or a[0].isdigit() or a in ("local", "default"):
                break
            words.append(a)
        head, rest = (str(BIN / argv[0]), *words), argv[1 + len(words):]
    else:
        raise AssertionError(f"unexpected command {argv}")
    for a in rest:
        if re.fullmatch(r"(infra|flows|collector|docs)/[\w./-]+", a):
            assert (ROOT / a).exists(), f"{' '.join(argv)}: {a} does not exist"
    text = help_text(*head)
    for a in rest:
        if a.startswith("--"):
            flag = a.split("=", 1)[0]
            assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", text), f"{' '.join(argv)}: {flag} is not an option"


def collector_field(env: str):
    """The settings field a ``COLLECTOR_A__B`` variable sets, or None."""
    model, field = Settings, None
    for part in env[len("COLLECTOR_"):].lower().split("__"):
        if model is None or (field := model.model_fields.get(part)) is None:
            return None
        ann = field.annotation
        model = ann if inspect.isclass(ann) and issubclass(ann, BaseModel) else None
    return field


def prefect_canonical(env: str) -> str | None:
    from prefect.settings import Settings as PrefectSettings
    from prefect.settings.legacy import _get_settings_fields, _get_valid_setting_names

    if env not in _get_valid_setting_names(PrefectSettings):
        return None
    s = _get_settings_fields(PrefectSettings).get(env)
    return s.name if s is not None else env


def check_env(name: str) -> None:
    if name.startswith("COLLECTOR_"):
        assert collector_field(name) is not None, f"{name}: no such field in collector/config/settings.py"
    elif name.startswith("PREFECT_"):
        canon = prefect_canonical(name)
        assert canon is not None, f"{name}: not a Prefect setting"
        assert canon == name, f"{name} is a legacy alias: use {canon}"
    else:
        assert name in FOREIGN_ENV or name == "PROJECT_DIR", f"unexpected variable {name}"


def named_env(text: str) -> set[str]:
    """Every COLLECTOR_/PREFECT_ variable a file names, in comments too."""
    return {m for m in re.findall(r"\b((?:COLLECTOR|PREFECT)_[A-Z0-9_]*[A-Z0-9])\b", text)}


# --------------------------------------------------------------------------- tests


def test_the_dockerfile_names_what_exists():
    ins = dockerfile()
    workdir = next(a for i, a in ins if i == "WORKDIR")
    env = {k: v for i, a in ins if i == "ENV" for k, v in docker_env(a).items()}
    for i, a in ins:
        if i == "COPY":
            *srcs, _dst = shlex.split(a)
            for s in srcs:
                assert (ROOT / s).exists(), f"COPY {s}: not in the repository (the build context is its root)"
        if i == "RUN":
            for req in re.findall(r"-r\s+(\S+)", a):
                assert (ROOT / req).is_file(), req
    for k in env:
        check_env(k)
    assert env["PROJECT_DIR"] == workdir  # prefect.yaml's pull step: set_working_directory {{ $PROJECT_DIR }}
    assert "{{ $PROJECT_DIR }}" in (ROOT / "prefect.yaml").read_text()
    volumes = next(json.loads(a) for i, a in ins if i == "VOLUME")
    assert env["COLLECTOR_DATA_DIR"] in volumes
    user = next(a for i, a in ins if i == "USER")
    assert any(i == "RUN" and "useradd" in a and a.split("useradd", 1)[1].split("&&")[0].split()[-1] == user for i, a in ins)
    cmd = next(json.loads(a) for i, a in ins if i == "CMD")
    assert cmd[:3] == ["prefect", "worker", "start"] and cmd[cmd.index("--pool") + 1] == POOL
    check_command(cmd)
    # the package the image installs from its copies: pyproject's packages are among them
    copied = {shlex.split(a)[0] for i, a in ins if i == "COPY"}
    assert {"collector", "flows"} <= copied


def test_the_compose_file_names_what_exists(monkeypatch):
    c = compose()
    img = c["x-collector-image"]
    assert (INFRA / img["build"]["context"] / img["build"]["dockerfile"]).resolve() == INFRA / "Dockerfile"
    services = c["services"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for k in svc.get("environment", {}):
            check_env(k)
        cmd = svc.get("command")
        if cmd:
            check_command(cmd)
    # the collector's settings as the containers get them load (values too, not only names)
    for k in list(__import__("os").environ):
        if k.startswith("COLLECTOR_"):
            monkeypatch.delenv(k)
    for k, v in c["x-collector-env"].items():
        if k.startswith("COLLECTOR_"):
            monkeypatch.setenv(k, str(v))
    s = load_settings()
    data_mount = next(v for v in services["worker"]["volumes"] if v.startswith("data:"))
    assert str(s.data_dir) == data_mount.split(":", 1)[1]
    assert services["worker"]["command"][services["worker"]["command"].index("--pool") + 1] == POOL
    assert "postgresql+asyncpg://" in services["server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert all(p.startswith("127.0.0.1:") for svc in services.values() for p in svc.get("ports", []))  # loopback only
    for name in ("server", "worker"):
        assert services[name].get("init") is True  # the worker gets SIGTERM itself (tini as PID 1)


def test_the_docker_work_pool_yaml_matches_the_code_and_prefect_yaml():
    d, c = docker_yaml(), compose()
    local = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert [x["name"] for x in d["deployments"]] == [x["name"] for x in local["deployments"]]
    workdir = next(a for i, a in dockerfile() if i == "WORKDIR")
    assert d["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == workdir
    for dep in d["deployments"] + local["deployments"]:
        path, func = dep["entrypoint"].split(":")
        assert (ROOT / path).is_file(), dep["entrypoint"]
        mod = importlib.import_module(path[:-3].replace("/", "."))
        from prefect import Flow

        assert isinstance(getattr(mod, func), Flow), f"{dep['entrypoint']} is not a Prefect flow"
    for dep, twin in zip(d["deployments"], local["deployments"]):
        assert dep["entrypoint"] == twin["entrypoint"]
        job = dep["work_pool"]["job_variables"]
        assert job["image"] == c["x-collector-image"]["image"]
        assert job["volumes"] == [f"{c['name']}_data:{c['x-collector-env']['COLLECTOR_DATA_DIR']}"]
        assert job["networks"] == [f"{c['name']}_default"]
        assert job["env"]["PREFECT_API_URL"] == c["x-collector-env"]["PREFECT_API_URL"]
        for k in job["env"]:
            check_env(k)


@pytest.mark.parametrize("name", ["Dockerfile", "docker-compose.yml", "prefect.docker.yaml", "README.md"])
def test_every_variable_named_is_a_real_setting(name):
    names = named_env((INFRA / name).read_text())
    assert names or name == "Dockerfile"
    for n in sorted(names):
        check_env(n)


def test_every_readme_command_exists():
    cmds = [c for c in readme_commands() if c and c[0] in ("prefect", "python", "collector")]
    assert any(c[:3] == ["python", "-m", "flows.stack.up"] for c in cmds) and any(c[0] == "prefect" for c in cmds)
    for c in cmds:
        check_command(c)
    for c in readme_commands():
        if c[:2] == ["docker", "compose"]:
            assert (ROOT / c[c.index("-f") + 1]).is_file()
            for svc in c[c.index("-f") + 2:]:
                if svc in ("worker", "setup", "server", "postgres"):
                    assert svc in compose()["services"]
            if "python" in c:  # docker compose ... exec worker python -m ...
                check_command(c[c.index("python"):])


def test_a_renamed_module_or_setting_fails_these_checks():
    with pytest.raises(AssertionError, match="no such module"):
        check_command(["python", "-m", "flows.stack.upp", "--setup-only"])
    with pytest.raises(AssertionError, match="not an option"):
        check_command(["python", "-m", "flows.stack.up", "--setup-onlyy"])
    with pytest.raises(AssertionError, match="no such field"):
        check_env("COLLECTOR_POLLER__SHARDZ")
    with pytest.raises(AssertionError, match="legacy alias"):
        check_env("PREFECT_API_DATABASE_CONNECTION_URL")
    with pytest.raises(AssertionError, match="not a Prefect setting"):
        check_env("PREFECT_SERVER_DATABASE_URL")
