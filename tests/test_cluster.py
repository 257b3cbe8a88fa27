import logging
import os

from distributed import Client

from xgamma.cluster import get_client, scheduler_for


def test_small_jobs_run_synchronously_without_a_cluster(monkeypatch):
    monkeypatch.delenv("XGAMMA_SCHEDULER", raising=False)
    with scheduler_for(n_tasks=3) as active:
        assert active == "sync"


def test_embedded_cluster_logs_its_dashboard_and_keeps_fast_malloc(caplog, monkeypatch):
    monkeypatch.delenv("XGAMMA_SCHEDULER", raising=False)
    # a cluster started by another test in this process may have left it in our environment
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with caplog.at_level(logging.WARNING, logger="xgamma.cluster"):
        with get_client(n_workers=1) as client:
            assert isinstance(client, Client)
            assert len(client.scheduler_info()["workers"]) == 1
            environ = client.run(lambda: dict(os.environ))
            assert all("MALLOC_TRIM_THRESHOLD_" not in env for env in environ.values())
            # the statistical profiler would grow worker memory with every task
            profiling = client.run(lambda: __import__("dask").config.get("distributed.worker.profile.enabled"))
            assert not any(profiling.values())
    assert "dashboard: http" in caplog.text and "LocalCluster of 1 worker" in caplog.text


def test_a_given_client_is_used_and_left_open():
    with get_client(n_workers=1, quiet=True) as outer:
        with get_client(client=outer) as inner:
            assert inner is outer
        assert outer.status == "running"


def test_scheduler_address_from_the_environment(monkeypatch):
    with get_client(n_workers=1, quiet=True) as embedded:
        monkeypatch.setenv("XGAMMA_SCHEDULER", embedded.scheduler.address)
        with scheduler_for(n_tasks=1, quiet=True) as active:
            assert isinstance(active, Client) and active.scheduler.address == embedded.scheduler.address
