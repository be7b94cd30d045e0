"""The driver side of the linking rounds (the tasks are in ``corpusslim.dedup.rounds``): :class:`LinkRounds`
schedules the seed, the pointer-jumping rounds and the naming over partitions of document keys, and records each
round (its partitions' state files) and each partition's links files in the manifest. The driver holds file
records, futures and counts, never pairs: its memory does not grow with the documents.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from distributed import Client

from corpusslim.dedup import rounds as tasks_
from corpusslim.dedup.linking import Partitions
from corpusslim.runtime import storage
from corpusslim.runtime.manifest import Manifest
from corpusslim.runtime.shard_io import is_intact

# Pair rows per partition (verify and linking): a task peaked at 1.0 GB with 3.2M pairs per partition (worker
# process included; bench/results/dedup_scale.json), so 2M keeps a task well under 1 GB.
PAIRS_PER_LINK_TASK = 2_000_000
SECTION = "link"


class LinkRounds:
    """The driver side of linking over partitions: seed, rounds until no pointer moves, links files per shard.
    Each step's futures stay on the workers; the driver holds file records and counts only."""

    def __init__(self, client: Client, manifest: Manifest, work: str, fp: str,
                 each: Callable[[str, list], Iterable[dict]]):
        self.client, self.manifest, self.work, self.fp, self.each = client, manifest, work, fp, each

    def latest(self) -> dict | None:
        """The last recorded round of this index state whose state files are all intact."""
        recorded = sorted(k for k, v in self.manifest.section(SECTION).items()
                          if k.startswith("round-") and v.get("fp") == self.fp)
        for key in reversed(recorded):
            entry = self.manifest.get(SECTION, key)
            if all(is_intact(r) for r in entry["states"].values()):
                return entry
        return None

    def seed(self, pairs: list[tuple[object, bool]], partitions: Partitions, carried: dict) -> dict:
        """Round 0: ``pairs`` (file records or frames, each with whether its pairs are exact duplicates) routed to
        the partition of their later document; each partition's nodes pointed at their earliest duplicate."""
        submit, parts = self.client.submit, range(len(partitions))
        routed = [submit(tasks_.route_pairs, p, exact, partitions, pure=False) for p, exact in pairs]
        futures = [submit(tasks_.seed_partition, q, self._state_path(0, q),
                          *[submit(tasks_.pick, r, q, pure=False) for r in routed], pure=False) for q in parts]
        return self._record(0, partitions, futures, carried)

    def settle(self, entry: dict) -> dict:
        """Rounds from ``entry`` until no pointer moves (each round recorded)."""
        while entry["moved"]:
            entry = self._round(entry)
        return entry

    def _round(self, entry: dict) -> dict:
        """One pointer-jumping round: every partition asks the owners of its targets, they answer, it jumps."""
        submit, number = self.client.submit, entry["round"] + 1
        partitions = Partitions(tuple(entry["starts"]))
        states, parts = self._states(entry), range(len(partitions))
        asked = [submit(tasks_.ask, states[p], partitions, pure=False) for p in parts]
        answered = [submit(tasks_.answer_partition, states[q], *[submit(tasks_.pick, a, q, pure=False)
                                                                 for a in asked], pure=False) for q in parts]
        futures = [submit(tasks_.jump_partition, p, states[p], self._state_path(number, p),
                          *[submit(tasks_.part_for, a, p, pure=False) for a in answered], pure=False)
                   for p in parts]
        costs = [submit(tasks_.cost_of, a, pure=False) for a in answered]
        return self._record(number, partitions, futures, entry, costs)

    def _record(self, number: int, partitions: Partitions, futures: list, carried: dict,
                helpers: list = ()) -> dict:
        states, moved, cpu, peak = {}, 0, carried.get("cpu_seconds", 0.0), carried.get("task_peak_mb", 0.0)
        for result in self.each(f"link round {number}", futures):
            states[str(result["part"])] = result["state"]
            moved, cpu = moved + result["moved"], cpu + result["cpu_seconds"]
            peak = max(peak, result["peak_rss_mb"])
        for extra in self.client.gather(list(helpers)):
            cpu, peak = cpu + extra["cpu_seconds"], max(peak, extra["peak_rss_mb"])
        entry = {"fp": self.fp, "round": number, "starts": list(partitions.starts), "states": states,
                 "moved": moved, "cpu_seconds": round(cpu, 6), "task_peak_mb": peak,
                 "counts": carried.get("counts", {})}
        self.manifest.record(SECTION, f"round-{number:04d}", entry)
        self._drop_states(number - 2)  # the previous round stays: a torn state file falls back to it
        return entry

    def _drop_states(self, number: int) -> None:
        old = self.manifest.get(SECTION, f"round-{number:04d}")
        if number >= 0 and old and old.get("fp") == self.fp:
            for record in old["states"].values():
                storage.remove(record["path"])

    def name(self, entry: dict, index: dict[int, dict]) -> tuple[dict[int, dict], dict]:
        """The settled partitions' roots named by id (from the index files of the partition owning each root)
        and one links file per shard; each partition's files recorded. Returns the files by shard number and
        the step's totals (members, CPU seconds, task peak)."""
        submit = self.client.submit
        partitions = Partitions(tuple(entry["starts"]))
        states, parts = self._states(entry), range(len(partitions))
        owned: dict[int, list[dict]] = {q: [] for q in parts}
        for number in sorted(index):
            owned[partitions.of_shard(number)].append(index[number])
        asked = [submit(tasks_.ask_roots, states[p], partitions, pure=False) for p in parts]
        ids = [submit(tasks_.root_ids, owned[q], *[submit(tasks_.pick, a, q, pure=False) for a in asked],
                      pure=False) for q in parts]
        links_dir = storage.join(self.work, f"links-{self.fp}")
        futures = [submit(tasks_.write_links, p, states[p], links_dir,
                          *[submit(tasks_.part_for, i, p, pure=False) for i in ids], pure=False) for p in parts]
        files, totals = {}, {"members": 0, "cpu_seconds": 0.0, "task_peak_mb": 0.0}
        for result in self.each("link names", futures):
            self.manifest.record(SECTION, f"links-{result['part']:05d}", {"fp": self.fp, "files": result["files"]})
            files.update(result["files"])
            totals = _add(totals, result)
        for extra in self.client.gather([submit(tasks_.cost_of, i, pure=False) for i in ids]):
            totals = _add(totals, extra)
        return files, totals

    @staticmethod
    def _states(entry: dict) -> dict[int, dict]:
        return {int(p): r for p, r in entry["states"].items()}

    def _state_path(self, number: int, part: int) -> str:
        return storage.join(self.work, f"state-{self.fp}", f"{number:04d}-{part:05d}.parquet")


def _add(totals: dict, result: dict) -> dict:
    return {"members": totals["members"] + result.get("members", 0),
            "cpu_seconds": totals["cpu_seconds"] + result["cpu_seconds"],
            "task_peak_mb": max(totals["task_peak_mb"], result["peak_rss_mb"])}
