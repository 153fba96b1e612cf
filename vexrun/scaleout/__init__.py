"""``run.executor: ray``: the same compiled plan, run on Ray.

Each source is cut into partitions named by their range (a ``.vmig.jsonl`` file into byte ranges on line
boundaries, the local store into ``seq`` ranges; a source that cannot be cut is one partition). Worker actors
(:mod:`.worker`), each holding the plan's per-batch stages and the store connections, read a partition from
its cursor, run the per-batch stages and write the stores that take concurrent writers, and stream back one
:class:`~vexrun.batchflow.BatchDone` per batch. The driver (:mod:`.driver`) commits each partition's cursor
after its batch was acknowledged; the plan's global stages (dedup, the graph) and the targets that need one
writer in source order (files, embedded stores) run in the driver over the partitions in order (a barrier),
from per-partition spool files, so a file target is byte-identical to the local executor's. A killed run,
then the same command, resumes only the unfinished partitions.
"""
