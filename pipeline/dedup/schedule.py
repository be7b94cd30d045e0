"""The driver side of the linking rounds (the tasks are in ``corpusslim.dedup.rounds``): :class:`LinkRounds`
schedules the seed, the pointer-jumping rounds and the naming over partitions of document keys, and records each
round (its partitions' state files) and each partition's links files in the manifest. A step's tasks exchange
their rows through files (``corpusslim.dedup.shuffle``): the driver holds one future and one small record per
task, never pairs nor anything per pair of partitions, so its memory grows with neither the documents nor the
square of the partitions.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from distributed import Client, Future

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
    Each step waits for the one before (its files written); the driver holds file records and counts only."""

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
        """Round 0: ``pairs`` (file records or frames, each with whether its pairs are exact duplicates) sent to
        the partition of their later document; each partition's nodes pointed at their earliest duplicate."""
        client, layout, edges = self.client, scattered(self.client, partitions), self._step(0, "edges")
        spent = list(self.each("link edges", step(client, tasks_.route_pairs, [
            (s, p, exact, layout, edges) for s, (p, exact) in enumerate(pairs)])))
        futures = step(client, tasks_.seed_partition, [(q, edges, len(pairs), self._state_path(0, q))
                                                       for q in range(len(partitions))])
        return self._record(0, partitions, futures, carried, spent)

    def settle(self, entry: dict) -> dict:
        """Rounds from ``entry`` until no pointer moves (each round recorded)."""
        while entry["moved"]:
            entry = self._round(entry)
        return entry

    def _round(self, entry: dict) -> dict:
        """One pointer-jumping round: every partition asks the owners of its targets, they answer, it jumps."""
        client, number = self.client, entry["round"] + 1
        partitions = Partitions(tuple(entry["starts"]))
        states, parts, n = self._states(entry), range(len(partitions)), len(partitions)
        layout, asked = scattered(self.client, partitions), self._step(number, "asked")
        answers = self._step(number, "answers")
        spent = list(self.each(f"link round {number} ask",
                               step(client, tasks_.ask, [(p, states[p], layout, asked) for p in parts])))
        spent += self.each(f"link round {number} answer", step(client, tasks_.answer_partition, [
            (q, states[q], asked, n, answers) for q in parts]))
        futures = step(client, tasks_.jump_partition, [(p, states[p], answers, n, self._state_path(number, p))
                                                       for p in parts])
        return self._record(number, partitions, futures, entry, spent)

    def _record(self, number: int, partitions: Partitions, futures: list, carried: dict, spent: list[dict]) -> dict:
        """Record round ``number`` once its partitions' states are written; ``spent``: the results of the round's
        earlier steps (their CPU seconds and peaks count, and the rows and bytes they sent: ``sent``)."""
        done = list(self.each(f"link round {number}", futures))
        tasks = [*spent, *done]
        entry = {"fp": self.fp, "round": number, "starts": list(partitions.starts),
                 "states": {str(r["part"]): r["state"] for r in done}, "moved": sum(r["moved"] for r in done),
                 "cpu_seconds": round(carried.get("cpu_seconds", 0.0) + sum(r["cpu_seconds"] for r in tasks), 6),
                 "task_peak_mb": max([carried.get("task_peak_mb", 0.0), *(r["peak_rss_mb"] for r in tasks)]),
                 "sent": {k: sum(r["sent"][k] for r in spent) for k in ("rows", "bytes")},
                 "counts": carried.get("counts", {})}
        self.manifest.record(SECTION, f"round-{number:04d}", entry)
        storage.rmtree(self._step(number))
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
        client = self.client
        partitions = Partitions(tuple(entry["starts"]))
        states, parts, n = self._states(entry), range(len(partitions)), len(partitions)
        owned: dict[int, list[dict]] = {q: [] for q in parts}
        for number in sorted(index):
            owned[partitions.of_shard(number)].append(index[number])
        layout, asked, ids = scattered(self.client, partitions), self._step("names", "asked"), self._step("names",
                                                                                                         "ids")
        spent = list(self.each("link roots", step(client, tasks_.ask_roots, [(p, states[p], layout, asked)
                                                                              for p in parts])))
        spent += self.each("link root ids", step(client, tasks_.root_ids, [(q, owned[q], asked, n, ids)
                                                                            for q in parts]))
        links_dir = storage.join(self.work, f"links-{self.fp}")
        futures = step(client, tasks_.write_links, [(p, states[p], ids, n, links_dir) for p in parts])
        files, totals = {}, {"members": 0, "cpu_seconds": 0.0, "task_peak_mb": 0.0}
        for result in self.each("link names", futures):
            self.manifest.record(SECTION, f"links-{result['part']:05d}", {"fp": self.fp, "files": result["files"]})
            files.update(result["files"])
            totals = _add(totals, result)
        for sender in spent:
            totals = _add(totals, sender)
        storage.rmtree(self._step("names"))
        return files, totals

    @staticmethod
    def _states(entry: dict) -> dict[int, dict]:
        return {int(p): r for p, r in entry["states"].items()}

    def _state_path(self, number: int, part: int) -> str:
        return storage.join(self.work, f"state-{self.fp}", f"{number:04d}-{part:05d}.parquet")

    def _step(self, label: int | str, *step: str) -> str:
        """The directory of a step's files (``corpusslim.dedup.shuffle``) in round ``label`` (or the naming)."""
        return storage.join(self.work, f"shuffle-{self.fp}", f"{label:04d}" if isinstance(label, int) else label,
                            *step)


def step(client: Client, func: Callable, calls: list[tuple]) -> list[Future]:
    """One task of ``func`` per argument tuple of ``calls``, submitted in one call (``Client.map``): distributed
    keeps on the driver about a quarter of the memory per task that a ``submit`` per task leaves (0.8 KB against
    3.5 KB in distributed 2026.7.1; bench/results/dedup_scale.json, ``linking_partitions``)."""
    return client.map(func, *zip(*calls), pure=False) if calls else []


def scattered(client: Client, value: object) -> Future:
    """``value`` (what every task of a step takes: the partitions, the index files) on the workers, once: the
    tasks take the future, not each a copy (a copy per task would hold the value's size times the tasks on the
    driver). Unhashed: a key scattered again while its previous future is being released would lose the data."""
    return client.scatter([value], hash=False)[0]


def _add(totals: dict, result: dict) -> dict:
    return {"members": totals["members"] + result.get("members", 0),
            "cpu_seconds": totals["cpu_seconds"] + result["cpu_seconds"],
            "task_peak_mb": max(totals["task_peak_mb"], result["peak_rss_mb"])}
