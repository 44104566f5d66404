"""Name the rank that a distributed run lost.

With a process-group timeout (``env_cfg.dist_cfg.timeout``, see
:func:`mmdas.utils.launch.resolve_dist_timeout`) a rank that stopped (SIGSTOP,
a frozen machine) or died makes the others fail in their next collective,
with a backend error that names no rank (gloo: ``Timed out waiting 600000ms
for send operation to complete``). :func:`report_lost_ranks` turns that
error into one that names the ranks that no longer answer, found with
``torch.distributed.monitored_barrier`` on a gloo group of its own (the
broken collective leaves the main group unusable).
"""
import datetime
import re
from contextlib import contextmanager

import torch.distributed as torch_dist
from mmengine.config import Config

from .launch import resolve_dist_timeout

# the backend errors that mean "a peer did not answer" (gloo raises a plain
# RuntimeError naming its source file; NCCL a DistBackendError). Anything
# else, e.g. a data error on this rank alone, passes through: the other
# ranks would not join the diagnosing barrier.
_PEER_FAILURE = re.compile(
    r'gloo/transport|Timed out waiting \d+ ?ms|Connection (closed|reset) by '
    r'peer|NCCL|collective operation timeout')
_BACKEND_ERRORS = tuple(
    getattr(torch_dist, name) for name in ('DistBackendError',
                                           'DistNetworkError')
    if hasattr(torch_dist, name))
_FAILED_RANKS = re.compile(r'Ranks? ([\d, ]+) failed to pass')
_SILENT_RANK = re.compile(r'while waiting for send/recv from rank (\d+)')

# seconds the survivors wait for each other in the diagnosing barrier
BARRIER_SECONDS = 30


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed for want of a peer."""
    return isinstance(error, _BACKEND_ERRORS) or bool(
        _PEER_FAILURE.search(str(error)))


def lost_ranks(group, seconds: float) -> tuple:
    """Ranks that do not reach a barrier within ``seconds``.

    Every surviving rank calls this after its collective failed. Rank 0
    waits for all others and learns which are missing; another rank learns
    that rank 0 is (if rank 0 is the one lost).

    Args:
        group (ProcessGroup): A gloo group of all ranks, unused otherwise.
        seconds (float): How long to wait for the others.

    Returns:
        tuple: ``(ranks, detail)``: the lost ranks (empty if all answered
        or they cannot be told) and the barrier's own message.
    """
    try:
        torch_dist.monitored_barrier(
            group=group,
            timeout=datetime.timedelta(seconds=seconds),
            wait_all_ranks=True)
    except RuntimeError as e:
        text = str(e)
        found = _FAILED_RANKS.search(text)
        if found:
            return tuple(int(r) for r in re.findall(r'\d+',
                                                    found.group(1))), text
        found = _SILENT_RANK.search(text)
        if found:
            return (int(found.group(1)), ), text
        return (), text
    return (), 'every rank answered a barrier after the failure'


@contextmanager
def report_lost_ranks(cfg: Config):
    """Re-raise a failed collective as an error naming the lost ranks.

    Used around ``runner.train()`` / ``runner.test()`` in the tools. Every
    rank must enter it (it creates a gloo group, a collective call). It
    does nothing in a run that is not distributed.

    Args:
        cfg (Config): The run's config (for its distributed timeout).

    Raises:
        RuntimeError: ``rank R: lost rank(s) [...] ...`` when a collective
            failed because a peer did not answer; other errors pass through.
    """
    if not torch_dist.is_available() or not torch_dist.is_initialized() or \
            torch_dist.get_world_size() < 2:
        yield
        return
    timeout = resolve_dist_timeout(cfg)
    group = torch_dist.new_group(
        backend='gloo', timeout=datetime.timedelta(seconds=timeout))
    try:
        yield
    except Exception as error:
        if not is_peer_failure(error):
            raise
        rank = torch_dist.get_rank()
        ranks, detail = lost_ranks(group, min(timeout, BARRIER_SECONDS))
        who = (f'lost rank(s) {list(ranks)}: stopped, killed or stuck'
               if ranks else 'could not tell which rank was lost')
        raise RuntimeError(
            f'rank {rank}: a collective with the other ranks failed after '
            f'waiting up to {timeout:.0f} s (env_cfg.dist_cfg.timeout or '
            f'$MMDAS_DIST_TIMEOUT); {who}. Barrier: {detail}. '
            f'Backend error: {str(error).strip()[:300]}') from error
