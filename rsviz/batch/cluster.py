"""The Dask side of a batch: which cluster, the model loaded once per worker, the task a worker runs.

* :func:`local_cluster_size`: a ``LocalCluster`` sized to this machine (one worker per GPU; on CPUs, workers
  of :data:`CPU_CORES_PER_WORKER` cores, one task at a time each, torch using those cores);
* :func:`connect`: a ``Client`` of an existing cluster (a ``tcp://`` address, or any cluster object: Dask
  Gateway, dask-kubernetes, dask-jobqueue), else of a new ``LocalCluster``;
* :class:`ModelPlugin`: a :class:`distributed.WorkerPlugin` loading the model on each worker, also on a worker
  that restarts;
* :func:`dask_task`: :func:`rsviz.batch.task.process_scene` with that model.

Workers read the scenes and write into the batch folder by path, so they must see the same files as the
client: a ``LocalCluster``, or a cluster on a shared file system.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from distributed import WorkerPlugin

from rsviz.batch.scenes import BatchInputError, SceneSpec
from rsviz.batch.task import BatchJob, SceneOutcome, failed, process_scene
from rsviz.errors import ModelFolderError, RsvizError

#: CPU cores per worker of a default CPU ``LocalCluster`` (torch's intra-op threads; see docs/benchmarks.md).
CPU_CORES_PER_WORKER = 2


class ClusterError(RsvizError, ConnectionError):
    """The scheduler given cannot be reached, or the cluster has no workers."""


@dataclass(frozen=True)
class ClusterSize:
    """A ``LocalCluster``'s shape.

    Attributes:
        workers: Worker processes.
        threads_per_worker: Tasks each runs at once.
        torch_threads: torch intra-op threads per worker.
        gpus: GPUs (one per worker, as the resource ``GPU``), 0 on CPUs.
    """

    workers: int
    threads_per_worker: int
    torch_threads: int
    gpus: int = 0


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def local_cluster_size(workers: int | None = None, threads_per_worker: int | None = None) -> ClusterSize:
    """The shape of a ``LocalCluster`` on this machine.

    Args:
        workers: Worker processes (default: one per GPU, else one per :data:`CPU_CORES_PER_WORKER` cores).
        threads_per_worker: Tasks per worker at once (default 1: a task's torch already uses the worker's cores).

    Returns:
        The :class:`ClusterSize`; torch threads split the cores evenly over the workers.

    Raises:
        BatchInputError: ``workers`` or ``threads_per_worker`` below 1.
    """
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cores = cpu_cores()
    n = workers if workers is not None else (gpus or max(1, cores // CPU_CORES_PER_WORKER))
    t = threads_per_worker if threads_per_worker is not None else 1
    if n < 1 or t < 1:
        raise BatchInputError(f"--workers ({n}) and --threads-per-worker ({t}) must be at least 1")
    return ClusterSize(n, t, max(1, cores // n), gpus)


def connect(
    scheduler: Any = None, workers: int | None = None, threads_per_worker: int | None = None
) -> tuple[Any, Any, ClusterSize | None]:
    """A Dask client for a batch.

    Args:
        scheduler: None (a new ``LocalCluster`` of :func:`local_cluster_size`), a scheduler address
            (``tcp://host:8786``, a scheduler-file path ending in ``.json``), a cluster object (``.scheduler_address``)
            or a ``distributed.Client``, used unchanged.
        workers: See :func:`local_cluster_size` (only for a new ``LocalCluster``).
        threads_per_worker: See :func:`local_cluster_size`.

    Returns:
        ``(client, owned, size)``: ``owned`` is what the caller must close when done (the client and cluster it
        made), else None; ``size`` the ``LocalCluster``'s shape, None for a given cluster.

    Raises:
        ClusterError: The scheduler cannot be reached.
        BatchInputError: Sizes with a given scheduler, or sizes below 1.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None and (workers is not None or threads_per_worker is not None):
        raise BatchInputError("--workers and --threads-per-worker size a LocalCluster; leave them out with --scheduler")
    if isinstance(scheduler, Client):
        return scheduler, None, None
    if scheduler is not None:
        try:
            if isinstance(scheduler, str) and scheduler.endswith(".json"):
                client = Client(scheduler_file=scheduler, timeout="20s")
            else:
                client = Client(scheduler, timeout="20s")  # an address, or a cluster object
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler {scheduler} ({exc}); check the address and that it is running"
            ) from exc
        return client, client, None
    size = local_cluster_size(workers, threads_per_worker)
    cluster = LocalCluster(
        n_workers=size.workers,
        threads_per_worker=size.threads_per_worker,
        processes=True,
        resources={"GPU": 1} if size.gpus else None,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    return client, _Owned(client, cluster), size


class _Owned:
    """A client and the LocalCluster it was made for, closed together."""

    def __init__(self, client: Any, cluster: Any) -> None:
        self.client, self.cluster = client, cluster

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard's URL when the scheduler serves one (it needs ``bokeh``), else None."""
    try:
        services = client.scheduler_info(n_workers=0).get("services", {})
    except TypeError:  # releases before n_workers
        services = client.scheduler_info().get("services", {})
    return str(client.dashboard_link) if "dashboard" in services else None


def gpu_workers(client: Any) -> bool:
    """Whether any worker of the cluster advertises the resource ``GPU`` (tasks then each ask for one)."""
    return any(w.get("resources", {}).get("GPU") for w in client.scheduler_info().get("workers", {}).values())


def _worker_device(device: str, worker: Any) -> str:
    """``auto`` on a machine with several GPUs: the GPU of the worker's index (LocalCluster names workers 0, 1...)."""
    import torch

    if device != "auto" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return device
    name = getattr(worker, "name", None)
    return f"cuda:{name % torch.cuda.device_count()}" if isinstance(name, int) else device


class ModelPlugin(WorkerPlugin):
    """Loads the batch's model once per worker (and again on a restarted or added worker).

    Registered with ``client.register_plugin(plugin, name=job.plugin_name)``; tasks find it in
    ``get_worker().plugins[job.plugin_name]``.

    Args:
        job: The batch (model name, the client's weights hash, device).
        torch_threads: torch intra-op threads on the worker (None: torch's default; Dask's nanny sets
            ``OMP_NUM_THREADS=1``, so a worker meant to use several cores needs this).
    """

    def __init__(self, job: BatchJob, torch_threads: int | None = None) -> None:
        import threading

        self.job, self.torch_threads = job, torch_threads
        self.model: Any = None
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # sent to the workers without a loaded model or a lock
        return {"job": self.job, "torch_threads": self.torch_threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["job"], state["torch_threads"])  # type: ignore[misc]

    def setup(self, worker: Any) -> None:
        """Load the model on ``worker``.

        Raises:
            ModelFolderError: The worker's copy of the model differs from the client's (another weights hash).
            UnknownNameError: The model is not registered on the worker.
        """
        import torch

        from rsviz.models.api import load_model
        from rsviz.workspace.runs import weights_hash

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        theirs = weights_hash(self.job.model)
        if theirs != self.job.weights:
            raise ModelFolderError(
                f"worker {getattr(worker, 'address', '?')} has another copy of {self.job.model} (weights "
                f"{theirs}, the client's {self.job.weights}); install the same model folder on every worker"
            )
        self.model = load_model(self.job.model, _worker_device(self.job.options.device, worker))

    def teardown(self, worker: Any) -> None:
        """Drop the model."""
        self.model = None


def dask_task(spec: SceneSpec, job: BatchJob, scene_hash: str) -> SceneOutcome:
    """:func:`rsviz.batch.task.process_scene` on a Dask worker, with the model its :class:`ModelPlugin` loaded."""
    from distributed import get_worker

    w = get_worker()
    plugin: Any = w.plugins.get(job.plugin_name)
    if plugin is None or plugin.model is None:
        return failed(
            spec.name, scene_hash, RuntimeError(f"worker {w.address} has no {job.model} loaded"), worker=w.address
        )
    return process_scene(spec, job, scene_hash, plugin.model, plugin.lock, worker=str(w.address))
