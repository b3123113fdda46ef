"""Thread pools of loader workers (one thread each; fork-safe OpenCV)."""
from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, Iterator

import cv2

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(n: int = 1) -> Dict[str, Any]:
    """Caps every thread pool of this process at ``n``: OpenCV, torch (intra-op), and, through
    threadpoolctl, the BLAS / OpenMP pools numpy already loaded (OpenBLAS: the LiDAR projection's
    matmul would otherwise use every core in every worker); the environment variables cover pools
    created later.  Returns what was limited (for tests and the benchmark)."""
    import torch

    for k in THREAD_ENV:
        os.environ[k] = str(n)
    if cv2.getNumThreads() != n:    # see fork_safe_threads: a forked child must not resize OpenCV's pool
        cv2.setNumThreads(n)
    torch.set_num_threads(n)
    done: Dict[str, Any] = {"cv2": cv2.getNumThreads(), "torch": torch.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:       # a training install has it (setup.py extra "training"); env vars only then
        done["threadpoolctl"] = None
        return done
    threadpool_limits(n)
    done["threadpoolctl"] = {f"{d['internal_api']}:{os.path.basename(d.get('filepath', ''))}": d["num_threads"]
                             for d in threadpool_info()}
    return done


@contextlib.contextmanager
def fork_safe_threads(n: int = 1) -> Iterator[None]:
    """Wrap the start of forked workers (``iter(DataLoader)``, a fork Pool) in this.

    With torch loaded, ``cv2.setNumThreads`` in a forked child hangs once the parent has used OpenCV's
    pthreads pool (OpenCV 4.x; the child waits for pool threads that were not forked).  So the parent's
    pool is set to ``n`` threads while the children fork (they inherit it and :func:`limit_threads`
    leaves it alone) and restored afterwards."""
    old = cv2.getNumThreads()
    if old != n:
        cv2.setNumThreads(n)
    try:
        yield
    finally:
        if old != n:
            cv2.setNumThreads(old)


def worker_init(_worker_id: int) -> None:
    """Loader workers: every thread pool at one thread (the workers are the parallelism)."""
    limit_threads(1)
