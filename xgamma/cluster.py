"""Getting a Dask scheduler for xgamma's parallel work.

Order of precedence (no global state): a `distributed.Client` passed by the
caller, else a scheduler address passed as ``scheduler=``, else the
``XGAMMA_SCHEDULER`` environment variable, else an embedded default: a
`distributed.LocalCluster` of worker processes, or the synchronous scheduler
for jobs too small to be worth starting one.
"""

from __future__ import annotations

import contextlib
import logging
import os

import dask

__all__ = ["get_client", "scheduler_for"]

log = logging.getLogger(__name__)

ENV_VAR = "XGAMMA_SCHEDULER"


@contextlib.contextmanager
def get_client(client=None, scheduler=None, n_workers=None, threads_per_worker=1, quiet=False):
    """Yield a `distributed.Client`, closing only what this call started.

    Parameters
    ----------
    client : `distributed.Client`, optional
        Used as is (and left open).
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); defaults to
        ``$XGAMMA_SCHEDULER``.
    n_workers : int, optional
        Workers of the embedded `~distributed.LocalCluster` (default: one per
        core).
    threads_per_worker : int
        Threads per embedded worker (xgamma's tasks hold the GIL in places, so
        processes scale better than threads).
    quiet : bool
        Do not log the dashboard link.
    """
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get(ENV_VAR)
    if address:
        with Client(address) as new_client:
            _announce(new_client, f"connected to {address}", quiet)
            yield new_client
        return
    n_workers = n_workers or os.cpu_count() or 1
    with dask.config.set(_WORKER_CONFIG | {"distributed.nanny.pre-spawn-environ": _worker_environ()}), LocalCluster(
        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, dashboard_address=":0"
    ) as cluster, Client(cluster) as new_client:
        _announce(new_client, f"started a LocalCluster of {n_workers} worker processes", quiet)
        yield new_client


#: Settings of the embedded cluster:
#:
#: - no statistical profiler on the workers: it keeps a call tree per task and
#:   grew each worker by ~80 KB per observation, so memory grew with the number
#:   of observations (benchmarks/reduce.py, survey);
#: - memory checked every second, not every 100 ms, and the dashboard's system
#:   plots sampled every 2 s, not every 0.5 s: the nannies and the scheduler
#:   share the client's process, where these psutil polls took a tenth of the
#:   CPU of a 2-worker reduction. A worker over its memory limit is still
#:   paused, spilled or restarted, one second later at most.
_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def _worker_environ() -> dict:
    """Environment of embedded workers: distributed's defaults without ``MALLOC_TRIM_THRESHOLD_``.

    distributed sets it so that workers hand freed memory back to the
    operating system at once; that also switches off glibc's adaptive mmap
    threshold, so every large temporary array is mapped and faulted in
    afresh, which makes xgamma's NumPy kernels about 1.5x slower. Embedded
    workers keep glibc's defaults instead; for clusters you start yourself,
    drop the key from the ``distributed.nanny.pre-spawn-environ`` config.
    """
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def _announce(client, what, quiet):
    if quiet:
        return
    link = getattr(client, "dashboard_link", None)
    message = f"xgamma: {what}" + (f"; dashboard: {link}" if link else "")
    log.warning(message)


@contextlib.contextmanager
def scheduler_for(client=None, scheduler=None, n_tasks=None, min_tasks_for_cluster=8, quiet=False):
    """Yield a value for ``dask.compute(scheduler=...)``.

    The synchronous scheduler is used when no client or address is given and
    the job has fewer than ``min_tasks_for_cluster`` tasks; otherwise as
    `get_client`.
    """
    if client is None and scheduler is None and not os.environ.get(ENV_VAR):
        if n_tasks is not None and n_tasks < min_tasks_for_cluster:
            yield "sync"
            return
    with get_client(client=client, scheduler=scheduler, quiet=quiet) as active:
        yield active
