"""Scheduler preload for ``bench/cluster_overhead.py``: counts the bytes the scheduler reads and writes on its TCP
comms (every message: task submissions, results fetched through it, worker heartbeats), readable with
``client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.byte_counts))``.

    dask scheduler --preload bench/scheduler_bytes.py ...
"""
import distributed.comm.tcp as tcp

# Distributed may import a preload module more than once: patch once, keep one set of counters on the module.
if not hasattr(tcp, "corpusslim_byte_counts"):
    tcp.corpusslim_byte_counts = {"read": 0, "written": 0, "messages_read": 0, "messages_written": 0}
    _write, _from_frames = tcp.TCP.write, tcp.from_frames

    async def _counted_write(self, msg, serializers=None, on_error="message"):
        n = await _write(self, msg, serializers=serializers, on_error=on_error)
        tcp.corpusslim_byte_counts["written"] += n
        tcp.corpusslim_byte_counts["messages_written"] += 1
        return n

    async def _counted_from_frames(frames, *args, **kwargs):
        tcp.corpusslim_byte_counts["read"] += sum(memoryview(f).nbytes for f in frames)
        tcp.corpusslim_byte_counts["messages_read"] += 1
        return await _from_frames(frames, *args, **kwargs)

    tcp.TCP.write = _counted_write
    tcp.from_frames = _counted_from_frames


def dask_setup(scheduler):
    scheduler.byte_counts = tcp.corpusslim_byte_counts
