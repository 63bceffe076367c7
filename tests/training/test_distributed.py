"""Collective helpers of limbseg.training.distributed, run with two real Gloo processes on CPU."""

from __future__ import annotations

import socket

import torch
import torch.multiprocessing as mp

from limbseg.training import distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, results) -> None:  # a spawned process: keep it importable
    import os

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)})
    world = distributed.init_from_env("cpu")
    try:
        # rank 0 saw 3 tiles with loss sum 6.0, rank 1 saw 1 tile with loss sum 10.0
        total, seen = distributed.sum_over_ranks([6.0, 3.0] if rank == 0 else [10.0, 1.0], world, torch.device("cpu"))
        shared = distributed.broadcast({"from": rank}, world)
        results[rank] = (total, seen, shared["from"])
    finally:
        distributed.shutdown(world)


def test_sum_over_ranks_and_broadcast_with_two_processes():
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_rank, args=(_free_port(), results), nprocs=2, join=True)
    assert dict(results) == {0: (16.0, 4.0, 0), 1: (16.0, 4.0, 0)}  # mean loss over both ranks: 16 / 4


def test_single_process_world_is_a_no_op():
    world = distributed.World()
    assert distributed.sum_over_ranks([1.5, 2.0], world, torch.device("cpu")) == [1.5, 2.0]
    assert distributed.broadcast({"a": 1}, world) == {"a": 1}
