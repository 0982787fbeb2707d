"""Data-parallel training on torch.distributed: one process per device, launched by torchrun or by us.

`python -m lrsflows trainer.devices=N` starts the N processes through torch's own elastic launcher (the
machinery behind torchrun); under `torchrun` the processes already exist. NCCL joins GPUs, gloo CPUs.
"""

import logging
import os
import socket
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from ..errors import Stopped

# How long a process whose group broke waits for the launcher to notice the dead one (it polls every 0.5 s).
LAUNCHER_NOTICES_S = 5.0


@dataclass(frozen=True)
class Process:
    """This process's place in the group (rank 0 of 1 when not distributed) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def already_distributed() -> bool:
    """Whether this process is one of several that torchrun, `launch` or a SLURM job (one task per GPU) started."""
    return int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))) > 1


def is_launching_process() -> bool:
    """Whether this process speaks for the run: a single process, our launcher, or rank 0 of torchrun/SLURM."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0


def join(device_name: str) -> Process:
    """Join the process group that torchrun, `launch` or SLURM set up (if any) and pick this process's device."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export()  # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from SLURM
    if not already_distributed():
        return Process(0, 1, _device(device_name, local_rank=0))
    local_rank = int(os.environ["LOCAL_RANK"])
    device = _device(device_name, local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Process(dist.get_rank(), dist.get_world_size(), device)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)


def gather(values: torch.Tensor, process: Process) -> torch.Tensor:
    """Every process's values, concatenated in rank order, on every process (CPU)."""
    return torch.cat(gather_objects(values.cpu(), process))


def gather_objects(item, process: Process) -> list:
    """Every process's `item` (any picklable value), in rank order."""
    if process.world_size == 1:
        return [item]
    items = [None] * process.world_size
    dist.all_gather_object(items, item)
    return items


def any_process(flag: bool, process: Process) -> bool:
    """True on every process when `flag` is true on at least one."""
    if process.world_size == 1:
        return flag
    total = torch.tensor([float(flag)], device=process.device)
    dist.all_reduce(total)
    return bool(total.item())


def mean(value: torch.Tensor, process: Process) -> torch.Tensor:
    """The average of a tensor over the processes."""
    if process.world_size > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.AVG if value.device.type == "cuda" else dist.ReduceOp.SUM)
        if value.device.type != "cuda":  # gloo has no AVG
            value /= process.world_size
    return value


def wait_to_be_stopped() -> None:
    """In one of several processes, after an error that is no user's: when another process died, the group broke
    (which is what failed here) and the launcher is about to stop this process and name the dead one, so end
    silently when it does; otherwise return after a few seconds and let the error be reported as it is."""
    try:
        time.sleep(LAUNCHER_NOTICES_S)
    except Stopped as stop:
        raise SystemExit(stop.exit_code) from None


def available_cores() -> int:
    """The cores this process may run on (its affinity mask: a container's or a cluster job's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads(devices: int, parallel_jobs: int) -> int:
    """Intra-op threads for each process when trainer.threads is null: an OMP_NUM_THREADS of the environment (the
    user's choice), else the available cores divided by the processes running at once on this machine (this run's
    local data-parallel processes, torchrun's or trainer.devices, times the jobs running side by side; -1 jobs:
    one per core). OpenMP threads that outnumber the cores spin against each other (two 2-thread runs on 2 cores:
    a step 25x slower)."""
    chosen = os.environ.get("OMP_NUM_THREADS", "")
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    cores = available_cores()
    jobs = cores if parallel_jobs == -1 else max(1, parallel_jobs)
    processes = jobs * int(os.environ.get("LOCAL_WORLD_SIZE", devices))
    return max(1, cores // processes)


def launch(num_processes: int, function, *args):
    """Run function(*args) in `num_processes` local processes joined into one group; rank 0's return value."""
    _quiet_launch()
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=num_processes,
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{_free_port()}",
        run_id=f"lrsflows-{os.getpid()}",
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
    )
    return elastic_launch(config, function)(*args)[0]


def _quiet_launch() -> None:
    """The CLI reports a worker's failure or a stop in one sentence, so torch's own log lines about it (a logged
    traceback among them) are silenced, and so is the resource tracker's warning about the semaphores of a worker
    killed by a signal (it releases them)."""
    for name in ("torch.distributed.elastic", "torch.multiprocessing"):
        logging.getLogger(name).handlers = [logging.NullHandler()]
        logging.getLogger(name).propagate = False
    ignore, warnings = "ignore:resource_tracker:UserWarning", os.environ.get("PYTHONWARNINGS", "")
    if ignore not in warnings:
        os.environ["PYTHONWARNINGS"] = f"{warnings},{ignore}" if warnings else ignore


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
