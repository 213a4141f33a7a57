"""docker-compose.yml can't run here (no Docker engine): parse it and check it against settings."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (ROOT / "config" / "settings.py").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _settings_variables() -> set[str]:
    return set(re.findall(r'env_(?:str|bool|int|list|url|networks)\(\s*"([A-Z0-9_]+)"', SETTINGS))


class DockerComposeTests:
    def test_it_runs_the_whole_production_stack(self) -> None:
        services = _compose()["services"]
        default = {name for name, service in services.items() if "profiles" not in service}
        assert default == {"migrate", "postgres", "redis", "web", "worker", "beat"}
        assert "gunicorn config.wsgi:application" in services["web"]["command"]
        # Migrations run once as the tables' owner; the app runs as a role that owns nothing.
        assert "migrate --noinput" in services["migrate"]["command"]
        assert "grant_app_role safeguard_app" in services["migrate"]["command"]
        assert "postgres://safeguard:" in services["migrate"]["environment"]["DATABASE_URL"]
        for name in ("web", "worker", "beat"):
            assert services[name]["environment"]["DATABASE_URL"].startswith(
                "postgres://safeguard_app:"
            )
            assert services[name]["depends_on"]["migrate"] == {
                "condition": "service_completed_successfully"
            }
        assert "-Q hashing,default,packets" in services["worker"]["command"]
        assert services["beat"]["command"].startswith("celery -A config beat")

    def test_the_scale_profile_splits_the_worker_by_queue(self) -> None:
        """`docker compose --profile scale up --scale worker=0`: one worker kind per queue set,
        together consuming every queue Celery routes to (tests/test_scale_out.py runs it)."""
        services = _compose()["services"]
        scale = {name for name, s in services.items() if "scale" in s.get("profiles", [])}
        assert scale == {"worker-hashing", "worker-default"}
        queues: list[str] = []
        for name in sorted(scale):
            command = services[name]["command"]
            assert command.startswith("celery -A config worker -Q ")
            queues += command.split("-Q ", 1)[1].split()[0].split(",")
            assert "--max-tasks-per-child ${CELERY_MAX_TASKS_PER_CHILD:-1000}" in command
            assert services[name]["environment"]["DATABASE_URL"].startswith(
                "postgres://safeguard_app:"
            )
        assert sorted(queues) == ["default", "hashing", "packets"]  # each queue exactly once
        assert "--prefetch-multiplier 1" in services["worker-hashing"]["command"]
        assert "${CELERY_HASHING_CONCURRENCY:-4}" in services["worker-hashing"]["command"]
        assert "${CELERY_PREFETCH_MULTIPLIER:-1}" in services["worker-default"]["command"]

    def test_every_variable_it_interpolates_is_documented_in_env_example(self) -> None:
        documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE, flags=re.M))
        text = (ROOT / "docker-compose.yml").read_text()
        live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        used = set(re.findall(r"\$\{([A-Z0-9_]+)", live))
        assert used and used <= documented, used - documented

    def test_every_service_has_a_health_check_and_named_volumes_exist(self) -> None:
        compose = _compose()
        for name, service in compose["services"].items():
            if name != "migrate":  # one-shot: it runs to completion, it isn't watched
                assert "healthcheck" in service, name
        assert set(compose["volumes"]) == {"pgdata", "redisdata", "evidence", "checkpoints"}

    def test_every_variable_it_sets_exists_in_settings(self) -> None:
        known = _settings_variables()
        for name in ("web", "worker", "beat"):
            for variable in _compose()["services"][name]["environment"]:
                assert variable in known, f"{name} sets {variable}, which settings never read"

    def test_every_settings_variable_is_documented_in_env_example(self) -> None:
        documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE, flags=re.M))
        assert _settings_variables() <= documented, _settings_variables() - documented


class MakeDemoTests:
    def test_links_in_mail_and_pages_point_at_the_port_the_demo_serves(self) -> None:
        # SITE_URL builds every absolute link (999 pages, invitations, notifications): a demo
        # on another port must not mail links to :8000.
        env = {k: v for k, v in os.environ.items() if k != "SITE_URL"}
        plan = subprocess.run(
            ["make", "-n", "demo", "HOST=127.0.0.1", "PORT=8771"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        seed, serve = (
            line for line in plan.splitlines() if "seed_demo" in line or "runserver" in line
        )
        assert "SITE_URL=http://127.0.0.1:8771 " in seed
        assert "SITE_URL=http://127.0.0.1:8771 " in serve
        assert serve.endswith("runserver 127.0.0.1:8771")
