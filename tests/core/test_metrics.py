"""GET /metrics (core.metrics, core.metrics_views and the apps' collectors): who may scrape,
and that every named series is exposed with the values the data implies."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from core import metrics as core_metrics
from moderation.matching.banks import _bank_dir
from moderation.models import Case, Escalation, Exchange, HashList, Media
from reports.models import Destination, ReferralPacket
from tests.conftest import client_for
from tests.core.test_logging import _clean_env
from tests.core.test_settings import _load_settings
from tests.moderation.factories import make_case, make_known_material_cases, make_open_case
from tests.services import require_redis
from tests.worker import WorkerProcess, start_worker, wait_for

__all__ = ["start_worker"]  # the fixture, imported for pytest

TOKEN = "metrics-token-for-tests-0123456789"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}

# The series issue 21 names, as exposed (counters carry _total, histograms _bucket).
NAMED_SERIES = [
    "safeguard_http_requests_total",  # request rates
    "safeguard_http_request_duration_seconds_bucket",  # request latencies
    "safeguard_celery_queue_length",
    "safeguard_celery_unacked_messages",
    "safeguard_celery_tasks_total",  # task outcomes
    "safeguard_celery_workers_alive",
    "safeguard_celery_worker_last_seen_timestamp_seconds",
    "safeguard_cases_open",
    "safeguard_case_oldest_open_age_seconds",  # oldest open case age by priority
    "safeguard_cases_sla_breached",  # SLA breaches
    "safeguard_escalations_sla_breached",
    "safeguard_referrals_sla_breached",
    "safeguard_immediate_risk_cases_waiting",
    "safeguard_immediate_risk_oldest_waiting_age_seconds",
    "safeguard_pages_unacknowledged",
    "safeguard_page_oldest_unacknowledged_age_seconds",
    "safeguard_pages_sent_unacknowledged",
    "safeguard_hashing_backlog",
    "safeguard_hashing_oldest_backlog_age_seconds",
    "safeguard_hashing_failed_media",  # hashing failures
    "safeguard_hash_list_matches_total",  # match rates per list
    "safeguard_hash_list_updated_timestamp_seconds",
    "safeguard_hash_list_version",
    "safeguard_hash_list_index_age_seconds",  # index age per list
    "safeguard_exchange_last_success_timestamp_seconds",
    "safeguard_exchange_enabled",
    "safeguard_exchange_failing",
    "safeguard_referral_packets",
    "safeguard_packet_build_failures",
    "safeguard_packet_builds_stuck",
    "safeguard_audit_unsealed_events",
    "safeguard_audit_sealing_lag_seconds",
    "safeguard_audit_last_checkpoint_timestamp_seconds",
    "safeguard_metrics_collector_up",
    "safeguard_metrics_collector_duration_seconds",
]


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(found: dict[str, Any], name: str, **labels: str) -> float:
    matching = [v for lab, v in found[name] if all(lab.get(k) == x for k, x in labels.items())]
    assert len(matching) == 1, (name, labels, found.get(name))
    return matching[0]


def scrape(client: Client | None = None) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = (client or Client()).get("/metrics", **AUTH)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


@pytest.fixture
def token(settings: Any) -> str:
    settings.SAFEGUARD_METRICS_TOKEN = TOKEN
    settings.SAFEGUARD_METRICS_ALLOWED_NETWORKS = []
    return TOKEN


@pytest.mark.django_db
class MetricsAccessTests:
    def test_it_is_refused_to_everyone_when_nothing_is_configured(
        self, admin_user: Any, outsider: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_METRICS_TOKEN = ""
        settings.SAFEGUARD_METRICS_ALLOWED_NETWORKS = []
        for client in (Client(), client_for(outsider), client_for(admin_user)):
            response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything-at-all-here")
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "metrics_not_configured"
            assert b"safeguard_" not in response.content

    def test_without_the_token_it_answers_401_with_a_challenge(self, token: str) -> None:
        for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong-token-of-some-length"}):
            response = Client().get("/metrics", **header)
            assert response.status_code == 401
            assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
            assert b"safeguard_" not in response.content
        # Another scheme with the right secret is still not a bearer token.
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Token {token}")
        assert response.status_code == 401

    def test_a_console_session_is_not_enough(self, token: str, admin_user: Any) -> None:
        assert client_for(admin_user).get("/metrics").status_code == 401

    def test_with_the_token_it_answers_the_text_format(self, token: str) -> None:
        response = Client().get("/metrics", **AUTH)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain; version=")
        assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]

    def test_the_allow_list_refuses_other_addresses(self, settings: Any) -> None:
        settings.SAFEGUARD_METRICS_TOKEN = ""
        settings.SAFEGUARD_METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
        assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
        refused = Client(REMOTE_ADDR="10.2.0.1").get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"

    def test_a_forged_forwarded_for_does_not_pass_the_allow_list(self, settings: Any) -> None:
        settings.SAFEGUARD_METRICS_TOKEN = ""
        settings.SAFEGUARD_METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
        settings.SAFEGUARD_TRUSTED_PROXIES = []
        forged = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.1.2.3")
        assert forged.get("/metrics").status_code == 403
        # Behind a trusted proxy, the address it forwards is the client's (core.clientip).
        settings.SAFEGUARD_TRUSTED_PROXIES = ["192.0.2.1"]
        proxied = Client(REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.1.2.3")
        assert proxied.get("/metrics").status_code == 200

    def test_with_both_configured_both_must_pass(self, settings: Any) -> None:
        settings.SAFEGUARD_METRICS_TOKEN = TOKEN
        settings.SAFEGUARD_METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
        assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics", **AUTH).status_code == 200
        assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 401
        assert Client(REMOTE_ADDR="10.9.9.9").get("/metrics", **AUTH).status_code == 403

    def test_a_refused_post_is_refused_before_the_method_is_looked_at(self, token: str) -> None:
        assert Client().post("/metrics").status_code == 401
        response = Client().post("/metrics", **AUTH)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"

    def test_a_refused_scrape_computes_nothing(
        self, token: str, django_assert_num_queries: Callable[..., Any]
    ) -> None:
        with django_assert_num_queries(0):
            assert Client().get("/metrics").status_code == 401


@pytest.mark.django_db
class MetricsSeriesTests:
    def test_every_named_series_is_exposed(self, token: str) -> None:
        # Per-list and per-exchange series need a list and an exchange; outcomes a task.
        make_known_material_cases(1)
        pdq_list = HashList.objects.create(name="P", algorithm="pdq", threshold=31)
        _bank_dir(pdq_list).mkdir(parents=True)
        Exchange.objects.create(name="x", kind="ncmec", enabled=True)
        core_metrics.record_task_outcome("demo.task", "success")
        Client().get("/healthz")
        found = scrape()
        missing = [name for name in NAMED_SERIES if name not in found]
        assert missing == []
        assert all(v == 1 for _, v in found["safeguard_metrics_collector_up"])

    def test_requests_are_counted_by_pattern_and_timed(self, token: str) -> None:
        for _ in range(3):
            assert Client().get("/healthz").status_code == 200
        Client().get("/no/such/page/anywhere")
        found = scrape()
        assert value(found, "safeguard_http_requests_total", route="/healthz", status="200") >= 3
        assert (
            value(
                found,
                "safeguard_http_request_duration_seconds_count",
                route="/healthz",
                method="GET",
            )
            >= 3
        )
        # Paths that match nothing share one label: ids and junk never become series.
        routes = {lab["route"] for lab, _ in found["safeguard_http_requests_total"]}
        assert "<unmatched>" in routes and not any("anywhere" in r for r in routes)

    def test_case_series_follow_the_queue(self, token: str) -> None:
        make_open_case(2, timedelta(hours=-1))  # past its SLA
        make_open_case(3, timedelta(hours=5))
        risky = make_open_case(1, timedelta(hours=1))
        Case.objects.filter(pk=risky.pk).update(
            priority=0, immediate_risk=True, created_at=timezone.now() - timedelta(minutes=30)
        )
        found = scrape()
        assert value(found, "safeguard_cases_sla_breached", priority="2") == 1
        assert value(found, "safeguard_cases_sla_breached", priority="3") == 0
        assert value(found, "safeguard_cases_open", priority="0", status="open") == 1
        assert value(found, "safeguard_immediate_risk_cases_waiting", status="open") == 1
        age = value(found, "safeguard_case_oldest_open_age_seconds", priority="0")
        assert 29 * 60 <= age <= 40 * 60
        assert value(found, "safeguard_case_oldest_open_age_seconds", priority="4") == 0
        waiting = value(found, "safeguard_immediate_risk_oldest_waiting_age_seconds")
        assert 29 * 60 <= waiting <= 40 * 60

    def test_unacknowledged_pages_are_counted_by_tier(self, token: str) -> None:
        case = make_open_case(0, timedelta(hours=1))
        now = timezone.now()
        Escalation.objects.create(
            case=case,
            tier=Escalation.Tier.IMMEDIATE_RISK,
            reason="synthetic",
            opened_at=now - timedelta(minutes=6),
            sla_due_at=now - timedelta(minutes=1),
            page_count=3,
        )
        found = scrape()
        assert value(found, "safeguard_pages_unacknowledged", tier="immediate_risk") == 1
        assert value(found, "safeguard_pages_unacknowledged", tier="lead") == 0
        assert value(found, "safeguard_pages_sent_unacknowledged", tier="immediate_risk") == 3
        age = value(
            found, "safeguard_page_oldest_unacknowledged_age_seconds", tier="immediate_risk"
        )
        assert 6 * 60 <= age <= 10 * 60
        assert value(found, "safeguard_escalations_sla_breached", tier="immediate_risk") == 1

    def test_hashing_backlog_and_failures(self, token: str) -> None:
        cases = [make_case(kind="image") for _ in range(3)]
        media = list(Media.objects.filter(item__case__in=cases).order_by("pk"))
        Media.objects.filter(pk=media[0].pk).update(
            hash_status="pending", created_at=timezone.now() - timedelta(minutes=3)
        )
        Media.objects.filter(pk=media[1].pk).update(hash_status="failed", hash_error="synthetic")
        found = scrape()
        assert value(found, "safeguard_hashing_backlog", state="pending") == 1
        assert value(found, "safeguard_hashing_backlog", state="processing") == 0
        assert value(found, "safeguard_hashing_failed_media") == 1
        assert value(found, "safeguard_hashing_oldest_backlog_age_seconds") >= 170

    def test_lists_expose_matches_version_and_index_age(self, token: str) -> None:
        make_known_material_cases(1, 2)  # list "V" (sha256): two matches
        pdq_list = HashList.objects.create(name="P", algorithm="pdq", threshold=31)
        _bank_dir(pdq_list).mkdir(parents=True)  # this machine's index of its current version
        found = scrape()
        assert value(found, "safeguard_hash_list_matches_total", list="V") == 2
        assert value(found, "safeguard_hash_list_matches_total", list="P") == 0
        assert value(found, "safeguard_hash_list_version", list="P") == pdq_list.version
        assert 0 <= value(found, "safeguard_hash_list_index_age_seconds", list="P") < 60
        # Exact lists are matched in the database: no index, no index age.
        assert [lab for lab, _ in found["safeguard_hash_list_index_age_seconds"]] == [
            {"list": "P", "algorithm": "pdq"}
        ]

    def test_exchanges_expose_their_last_success(self, token: str) -> None:
        fetched = timezone.now() - timedelta(hours=2)
        Exchange.objects.create(
            name="ncmec-synthetic", kind="ncmec", enabled=True, last_success_at=fetched
        )
        Exchange.objects.create(name="never", kind="stopncii", enabled=False, state="failed")
        found = scrape()
        last = value(found, "safeguard_exchange_last_success_timestamp_seconds", exchange="never")
        assert last == 0
        got = value(
            found, "safeguard_exchange_last_success_timestamp_seconds", exchange="ncmec-synthetic"
        )
        assert abs(got - fetched.timestamp()) < 1
        assert value(found, "safeguard_exchange_enabled", exchange="ncmec-synthetic") == 1
        assert value(found, "safeguard_exchange_failing", exchange="never") == 1

    def test_packet_build_failures_are_counted(self, token: str) -> None:
        destination = Destination.objects.first()
        assert destination is not None
        ReferralPacket.objects.create(destination=destination, summary="s", status="failed")
        ReferralPacket.objects.create(
            destination=destination,
            summary="s",
            status="building",
            build_started_at=timezone.now() - timedelta(hours=1),
        )
        found = scrape()
        assert value(found, "safeguard_packet_build_failures") == 1
        assert value(found, "safeguard_packet_builds_stuck") == 1
        assert value(found, "safeguard_referral_packets", status="failed") == 1

    def test_audit_sealing_lag_is_the_oldest_unsealed_event(self, token: str) -> None:
        from core.audit import audit_seal
        from core.checkpoints import checkpoint_write
        from core.models import AuditEvent

        # Written unsealed; the sealer (beat) links it into the chain moments later.
        AuditEvent.objects.create(
            created_at=timezone.now() - timedelta(minutes=2),
            actor_label="test",
            verb="test.event",
            object_type="test",
            object_id="1",
        )
        found = scrape()
        assert value(found, "safeguard_audit_unsealed_events") > 0
        assert value(found, "safeguard_audit_sealing_lag_seconds") >= 119
        assert value(found, "safeguard_audit_last_checkpoint_timestamp_seconds") == 0
        while audit_seal():
            pass
        checkpoint_write()
        found = scrape()
        assert value(found, "safeguard_audit_unsealed_events") == 0
        assert value(found, "safeguard_audit_sealing_lag_seconds") == 0
        assert time.time() - value(found, "safeguard_audit_last_checkpoint_timestamp_seconds") < 60

    def test_a_failing_collector_is_reported_and_the_rest_still_answers(
        self, token: str, settings: Any
    ) -> None:
        settings.SAFEGUARD_METRICS_COLLECTORS = [
            "tests.core.test_metrics.broken_collector",
            "moderation.metrics.collect_hashing",
        ]
        found = scrape()
        assert (
            value(
                found,
                "safeguard_metrics_collector_up",
                collector="tests.core.test_metrics.broken_collector",
            )
            == 0
        )
        assert "safeguard_hashing_backlog" in found


def broken_collector() -> list[Any]:
    raise RuntimeError("a broken source")


@pytest.mark.redis
@pytest.mark.django_db
class CeleryMetricsTests:
    def test_queue_depths_are_the_broker_lists(self, token: str) -> None:
        client = redis.Redis.from_url(require_redis())
        client.delete("hashing", "hashing\x06\x166", "packets")
        try:
            client.rpush("hashing", b"m1", b"m2")
            client.rpush("hashing\x06\x166", b"m3")  # kombu's priority sibling list
            found = scrape()
            assert value(found, "safeguard_celery_queue_length", queue="hashing") == 3
            assert value(found, "safeguard_celery_queue_length", queue="packets") == 0
        finally:
            client.delete("hashing", "hashing\x06\x166")

    def test_task_outcomes_are_counted_in_the_broker(self, token: str) -> None:
        client = redis.Redis.from_url(require_redis())
        before = int(client.hget(core_metrics.TASKS_KEY, "demo.task|failure") or 0)
        core_metrics.record_task_outcome("demo.task", "failure", hostname="w1@test")
        found = scrape()
        assert value(
            found, "safeguard_celery_tasks_total", task="demo.task", outcome="failure"
        ) == (before + 1)
        assert value(found, "safeguard_celery_workers_alive") >= 1
        client.hdel(core_metrics.WORKERS_KEY, "w1@test")


@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RealWorkerMetricsTests:
    def test_a_real_workers_task_outcomes_reach_the_web_processes_scrape(
        self, start_worker: Callable[..., WorkerProcess], token: str
    ) -> None:
        from config.celery import app

        client = redis.Redis.from_url(require_redis())
        worker = start_worker()
        hostname_alive = wait_for(
            lambda: client.hgetall(core_metrics.WORKERS_KEY), message="the worker to be seen"
        )
        assert hostname_alive
        app.send_task("core.seal_audit_chain")
        wait_for(
            lambda: client.hget(core_metrics.TASKS_KEY, "core.seal_audit_chain|success"),
            message=f"the outcome of the worker's task\n{worker.output()}",
        )
        found = scrape(APIClient())
        assert (
            value(
                found,
                "safeguard_celery_tasks_total",
                task="core.seal_audit_chain",
                outcome="success",
            )
            >= 1
        )
        assert value(found, "safeguard_celery_workers_alive") >= 1
        worker.stop()
        # A worker that stops cleanly is no longer counted.
        assert value(scrape(APIClient()), "safeguard_celery_workers_alive") == 0


DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


class PrometheusConfigTests:
    """promtool is not available here: the files are parsed and checked against the series
    the scrape exposes, so a renamed metric cannot silently disable an alert."""

    def _rules(self) -> list[dict[str, Any]]:
        document = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
        return [rule for group in document["groups"] for rule in group["rules"]]

    def test_the_alert_rules_parse_and_each_rule_is_complete(self) -> None:
        rules = self._rules()
        for rule in rules:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"].startswith("Safeguard") and rule["expr"].strip()
            assert rule["labels"]["severity"] in ("page", "ticket")
            assert rule["annotations"]["summary"]
        names = [rule["alert"] for rule in rules]
        assert len(names) == len(set(names))

    def test_the_alerts_a_human_needs_now_exist_and_page(self) -> None:
        by_name = {rule["alert"]: rule for rule in self._rules()}
        for name, series in {
            "SafeguardImmediateRiskUnacknowledged": "safeguard_page_oldest_unacknowledged",
            "SafeguardAuditSealingStalled": "safeguard_audit_sealing_lag_seconds",
            "SafeguardExchangeStale": "safeguard_exchange_last_success_timestamp_seconds",
            "SafeguardWorkersGone": "safeguard_celery_workers_alive",
            "SafeguardHashingBacklog": "safeguard_hashing_oldest_backlog_age_seconds",
        }.items():
            assert series in by_name[name]["expr"], name
        for name in (
            "SafeguardImmediateRiskUnacknowledged",
            "SafeguardAuditSealingStalled",
            "SafeguardWorkersGone",
        ):
            assert by_name[name]["labels"]["severity"] == "page"

    def test_every_series_an_alert_uses_is_exposed(self) -> None:
        exposed = set(NAMED_SERIES) | {"safeguard_celery_tasks_total"}
        exposed |= {re.sub(r"_(total|bucket)$", "", name) for name in NAMED_SERIES}
        used = {
            name
            for rule in self._rules()
            for name in re.findall(r"\bsafeguard_[a-z_]+", rule["expr"])
        }
        assert used and used <= exposed, used - exposed

    def test_the_scrape_example_reads_metrics_with_the_bearer_token(self) -> None:
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
        (job,) = config["scrape_configs"]
        assert job["metrics_path"] == "/metrics"
        assert job["authorization"]["type"] == "Bearer"
        assert job["authorization"]["credentials_file"]
        assert job["static_configs"][0]["targets"]


class MetricsSettingsTests:
    """Malformed metrics settings stop start-up, naming the variable (config/settings.py)."""

    @pytest.mark.parametrize(
        ("env", "named"),
        [
            ({"SAFEGUARD_METRICS_TOKEN": "short"}, "SAFEGUARD_METRICS_TOKEN"),
            ({"SAFEGUARD_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,intranet"}, "intranet"),
        ],
    )
    def test_a_bad_value_is_refused_at_start_up(self, env: dict[str, str], named: str) -> None:
        result = _load_settings({"DEBUG": "true", **env})
        assert result.returncode != 0 and named in result.stderr

    def test_good_values_load(self) -> None:
        result = _load_settings(
            {
                "DEBUG": "true",
                "SAFEGUARD_METRICS_TOKEN": TOKEN,
                "SAFEGUARD_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, 2001:db8::/32",
            }
        )
        assert result.returncode == 0, result.stderr


class MultiprocessModeTests:
    def test_request_metrics_of_several_web_processes_add_up(self, tmp_path: Path) -> None:
        """gunicorn's processes each count their requests into PROMETHEUS_MULTIPROC_DIR; a
        scrape answered by any one of them reports the sum (prometheus-client's multiprocess
        mode, which docker-compose.yml turns on for `web`)."""
        env = {
            **_clean_env(),
            "DEBUG": "true",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "SAFEGUARD_METRICS_TOKEN": "",
            "SAFEGUARD_METRICS_ALLOWED_NETWORKS": "",
        }
        requests = (
            "import django; django.setup(); from django.test import Client; c = Client();"
            "[c.get('/metrics') for _ in range(3)]"
        )
        for _ in range(2):  # two web processes, three refused scrapes each
            done = subprocess.run(
                [sys.executable, "-c", requests], env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
        render_only_requests = (
            "import django; django.setup(); from django.conf import settings;"
            "settings.SAFEGUARD_METRICS_COLLECTORS = []; from core.metrics import render;"
            "print(render()[0].decode())"
        )
        done = subprocess.run(
            [sys.executable, "-c", render_only_requests], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        found = samples(done.stdout)
        assert value(found, "safeguard_http_requests_total", route="/metrics", status="403") == 6
        assert (
            value(
                found,
                "safeguard_http_request_duration_seconds_count",
                route="/metrics",
                method="GET",
            )
            == 6
        )
