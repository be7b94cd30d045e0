"""The job on an existing Dask cluster: a scheduler and two workers started as separate processes with the ``dask``
command line (``--nworkers 1``, each in its own working directory), on loopback; with local paths, and with input
and output on S3 (moto's server on 127.0.0.1, through s3fs). Output must equal the LocalCluster run's."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import fsspec
import polars as pl
import psutil
import pytest
import yaml
from distributed import Client, LocalCluster

from corpusslim.config import load_config
from corpusslim.errors import ConfigError
from corpusslim.runtime import storage
from corpusslim.runtime.cluster import check_workers
from corpusslim.runtime.runner import Progress, run
from tests.conftest import FULL_STAGES, output_bytes

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DASK = [sys.executable, "-m", "dask"]


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


class ExternalCluster:
    """``dask scheduler`` and ``dask worker`` processes (``threads`` each); stopped by :meth:`close`. ``hosts``: the
    address each binds to, scheduler first (default 127.0.0.1); ``prefixes``: a command prefix per process (e.g.
    ``ip netns exec``)."""

    def __init__(self, root: Path, workers: int, env: dict[str, str], hosts: list[str] | None = None,
                 prefixes: list[list[str]] | None = None, threads: int = 1):
        root.mkdir(parents=True, exist_ok=True)
        hosts = hosts or ["127.0.0.1"] * (workers + 1)
        prefixes = prefixes or [[]] * (workers + 1)
        self.root, self.env, self.threads = root, env, threads
        self.scheduler_file = root / "scheduler.json"
        self.scheduler = subprocess.Popen(
            [*prefixes[0], *DASK, "scheduler", "--host", hosts[0], "--port", "0", "--dashboard-address",
             f"{hosts[0]}:0", "--scheduler-file", str(self.scheduler_file)], env=env, cwd=root,
            stdout=subprocess.DEVNULL, stderr=open(root / "scheduler.log", "w"))
        _wait(self.scheduler_file.exists, 60, "the scheduler did not start")
        self.workers = []
        for host, prefix in zip(hosts[1:], prefixes[1:]):
            self.start_worker(host, prefix)
        with self.client() as client:
            client.wait_for_workers(workers, timeout=180)
            self.address = client.scheduler.address
            self.worker_addresses = sorted(client.scheduler_info()["workers"])

    def client(self) -> Client:
        return Client(scheduler_file=str(self.scheduler_file), timeout=60)

    def start_worker(self, host: str = "127.0.0.1", prefix: list[str] = ()) -> subprocess.Popen:
        """Start one more ``dask worker`` (it joins by itself, a few seconds later)."""
        home = self.root / f"worker-{len(self.workers)}"
        home.mkdir()
        worker = subprocess.Popen(
            [*prefix, *DASK, "worker", "--scheduler-file", str(self.scheduler_file), "--nworkers", "1",
             "--nthreads", str(self.threads), "--host", host, "--no-dashboard", "--local-directory", str(home)],
            env=self.env, cwd=home, stdout=subprocess.DEVNULL, stderr=open(home / "worker.log", "w"))
        self.workers.append(worker)
        return worker

    def worker_processes(self, i: int) -> list[psutil.Process]:
        """The Worker process a ``dask worker`` nanny started (the nanny restarts it when it dies)."""
        return [p for p in psutil.Process(self.workers[i].pid).children(recursive=True)
                if "resource_tracker" not in " ".join(p.cmdline())]

    def close(self) -> None:
        running = [p for p in [*self.workers, self.scheduler] if p.poll() is None]
        for p in running:
            p.send_signal(signal.SIGTERM)
        for p in running:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    _wait(up, 60, "moto server did not start")
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_endpoint):
    env = {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}
    external = ExternalCluster(tmp_path_factory.mktemp("dask"), 2, env)
    yield external
    external.close()


@pytest.fixture
def s3(monkeypatch, s3_endpoint):
    """The driver's S3 settings (the workers got the same at start) and a fresh bucket."""
    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    bucket = f"corpus-{time.monotonic_ns()}"
    fs.mkdir(bucket)
    return fs, bucket


def test_external_cluster_equals_local_cluster(reference, cluster, tmp_path):
    root, _ = reference
    out = tmp_path / "out"
    run(load_config(root / "config.yaml", overrides={"output": str(out)}), scheduler=cluster.address)
    assert output_bytes(out) == output_bytes(root / "out")


def _s3_config(directory: Path, bucket: str) -> Path:
    path = directory / "s3.yaml"
    path.write_text(yaml.safe_dump({"input": f"s3://{bucket}/input/*.parquet", "output": f"s3://{bucket}/out",
                                    "workers": 2, "stages": FULL_STAGES}), encoding="utf-8")
    return path


def _download(fs, prefix: str, target: Path) -> None:
    for d in ("kept", "rejected"):
        (target / d).mkdir(parents=True)
        for key in fs.glob(f"{prefix}/{d}/*.parquet"):
            fs.get(key, str(target / d / Path(key).name))


def test_s3_input_and_output_with_a_worker_killed(reference, cluster, s3, tmp_path):
    root, _ = reference
    fs, bucket = s3
    for shard in sorted((root / "input").glob("*.parquet")):
        fs.put(str(shard), f"{bucket}/input/{shard.name}")
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(_s3_config(tmp_path, bucket)),
           "--scheduler", cluster.address]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ)
    deadline, killed = time.monotonic() + 300, None
    while killed is None and driver.poll() is None and time.monotonic() < deadline:
        if fs.glob(f"{bucket}/out/_work/pre/*.parquet"):  # mid-run: some shards mapped, a worker busy
            victim = cluster.worker_processes(0)
            if victim:
                killed = victim[0].pid
                os.kill(killed, signal.SIGKILL)  # the nanny restarts it; its task runs again
        fs.invalidate_cache()
        time.sleep(0.05)
    _, err = driver.communicate(timeout=600)
    assert killed is not None, "no worker was killed"
    assert driver.returncode == 0, err[-3000:]
    assert "Dask dashboard: http://127.0.0.1:" in err
    fs.invalidate_cache()
    assert not [k for k in fs.find(f"{bucket}/out") if k.endswith(".tmp")]
    _download(fs, f"{bucket}/out", tmp_path / "local")
    assert output_bytes(tmp_path / "local") == output_bytes(root / "out")
    kept = pl.read_parquet(tmp_path / "local" / "kept" / "*.parquet")
    rejected = pl.read_parquet(tmp_path / "local" / "rejected" / "*.parquet")
    assert kept.height + rejected.height == sum(pl.read_parquet(p).height for p in (root / "input").glob("*.parquet"))
    _wait(lambda: len(cluster.worker_processes(0)) > 0, 120, "the nanny did not restart the killed worker")


def test_a_worker_missing_a_package_fails_the_job_at_start(reference, tmp_path):
    shadow = tmp_path / "shadow" / "jieba"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('jieba is not installed on this worker')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    external = ExternalCluster(tmp_path / "dask", 1, env)
    try:
        root, _ = reference
        with pytest.raises(ConfigError) as error:
            run(load_config(root / "config.yaml", overrides={"output": str(tmp_path / "out")}),
                scheduler=external.address)
    finally:
        external.close()
    message = str(error.value)
    assert "workers cannot run this job" in message and "tcp://127.0.0.1:" in message
    assert "'jieba'" in message and "not installed on this worker" in message
    assert f"{external.worker_addresses[0]} (1 thread):" in message
    assert not (tmp_path / "out" / "kept").exists()


def test_object_store_publish_leaves_nothing_when_the_write_fails():
    target = f"memory://publish-{time.monotonic_ns()}/kept/s0.parquet"

    def failing(f):
        f.write(b"PAR1 half a file")
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        storage.publish(target, failing)
    assert storage.walk_files(storage.dirname(storage.dirname(target))) == []
    storage.write_parquet(pl.DataFrame({"x": [1, 2, 3]}), target)
    assert storage.read_parquet(target)["x"].to_list() == [1, 2, 3]
    assert storage.listdir(storage.dirname(target)) == ["s0.parquet"]


class Namespaces:
    """Network namespaces joined by a bridge in this one (10.203.0.1): each of ``names`` gets its own address and
    its own loopback, so nothing can reach another process through a shared localhost."""

    SUBNET = "10.203.0"

    def __init__(self, names: list[str]):
        tag = f"cs{os.getpid() % 100000}"
        self.bridge, self.netns = f"{tag}br", [f"{tag}{n}" for n in names]
        self.addresses = [f"{self.SUBNET}.{i + 2}" for i in range(len(names))]
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "add", f"{self.SUBNET}.1/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for i, (ns, address) in enumerate(zip(self.netns, self.addresses)):
            outside, inside = f"{tag}v{i}a", f"{tag}v{i}b"
            self._ip("netns", "add", ns)
            self._ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self._ip("link", "set", inside, "netns", ns)
            self._ip("link", "set", outside, "master", self.bridge)
            self._ip("link", "set", outside, "up")
            for args in (("link", "set", "lo", "up"), ("addr", "add", f"{address}/24", "dev", inside),
                         ("link", "set", inside, "up")):
                self._ip("netns", "exec", ns, "ip", *args)

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.netns[i]]

    def close(self) -> None:
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)


def _namespaces_or_skip(names: list[str]) -> Namespaces:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    try:
        return Namespaces(names)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"network namespaces unavailable here: {exc}")


def test_scheduler_and_workers_in_separate_network_namespaces(reference, tmp_path):
    root, _ = reference
    spaces = _namespaces_or_skip(["s", "w0", "w1"])
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        external = ExternalCluster(tmp_path / "dask", 2, env, hosts=spaces.addresses,
                                   prefixes=[spaces.prefix(i) for i in range(3)])
        try:
            assert external.address.startswith(f"tcp://{spaces.addresses[0]}:")
            assert [a.split(":")[1].strip("/") for a in external.worker_addresses] == spaces.addresses[1:]
            out = tmp_path / "out"
            run(load_config(root / "config.yaml", overrides={"output": str(out)}), scheduler=external.address)
        finally:
            external.close()
    finally:
        spaces.close()
    assert output_bytes(out) == output_bytes(root / "out")


# The race of lazily loaded models showed up in every run with two threads per worker (5 of 5 before the fix,
# bench/threads.py); each run here starts fresh worker processes, so each loads its models again.
RACE_RUNS = 3


@pytest.mark.slow
def test_external_workers_with_two_threads_equal_the_single_threaded_run(reference, tmp_path):
    root, _ = reference
    external = ExternalCluster(tmp_path / "dask", 2, dict(os.environ), threads=2)
    try:
        with external.client() as client:
            assert check_workers(client, [str(root / "input")]) == dict.fromkeys(external.worker_addresses, 2)
            for i in range(RACE_RUNS):
                client.restart()
                out = tmp_path / f"out-{i}"
                run(load_config(root / "config.yaml", overrides={"output": str(out)}), scheduler=external.address)
                assert output_bytes(out) == output_bytes(root / "out"), f"run {i} differs"
    finally:
        external.close()


@pytest.mark.slow
def test_local_cluster_with_two_threads_per_worker_equals_the_single_threaded_run(reference, tmp_path):
    root, _ = reference
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.CRITICAL) as local:
        run(load_config(root / "config.yaml", overrides={"output": str(tmp_path / "out")}),
            scheduler=local.scheduler_address)
    assert output_bytes(tmp_path / "out") == output_bytes(root / "out")


class Elastic(Progress):
    """Changes the cluster while the job runs: one worker joins when the map phase starts (and is waited for),
    and a worker running apply tasks leaves for good (nanny and worker killed) once that phase is under way."""

    def __init__(self, cluster: ExternalCluster):
        self.cluster, self.joined, self.left, self.lost_tasks = cluster, None, None, []
        self.ran_before_apply: dict[str, list[str]] = {}  # tasks each worker ran to completion, by worker

    def phase(self, name: str, tasks: int) -> None:
        if name == "map" and tasks and self.joined is None:
            with self.cluster.client() as client:
                before = set(client.scheduler_info()["workers"])
                self.cluster.start_worker()
                client.wait_for_workers(len(before) + 1, timeout=120)
                (self.joined,) = set(client.scheduler_info()["workers"]) - before
        if name == "apply" and tasks and self.left is None:
            def ran(dask_worker) -> list[str]:  # local, so it ships by value: workers cannot import this module
                return sorted({str(e[0]) for e in dask_worker.state.log if len(e) == 4 and e[1] == "put-in-memory"})

            with self.cluster.client() as client:
                self.ran_before_apply = client.run(ran)
                _wait(lambda: any(self._applying(client).values()), 60, "no apply task started")
                self.left, self.lost_tasks = max(self._applying(client).items(), key=lambda kv: len(kv[1]))
                worker = psutil.Process(client.run(os.getpid, workers=[self.left])[self.left])
                for p in (worker.parent(), worker):  # the nanny first, or it would start a new worker
                    p.kill()

    @staticmethod
    def _applying(client: Client) -> dict[str, list[str]]:
        return {w: [k for k in keys if str(k).startswith("apply_shard")] for w, keys in client.processing().items()}


@pytest.mark.slow
def test_a_worker_joining_mid_map_gets_work_and_one_leaving_mid_apply_loses_nothing(reference, tmp_path):
    root, _ = reference
    external = ExternalCluster(tmp_path / "dask", 1, dict(os.environ), threads=2)
    elastic = Elastic(external)
    try:
        out = tmp_path / "out"
        run(load_config(root / "config.yaml", overrides={"output": str(out)}), scheduler=external.address,
            progress=elastic)
    finally:
        external.close()
    assert elastic.joined and elastic.left and elastic.lost_tasks
    joined_ran = elastic.ran_before_apply.get(elastic.joined, [])
    assert any(k.startswith("map_shard") for k in joined_ran), elastic.ran_before_apply
    assert output_bytes(out) == output_bytes(root / "out")
    assert not list(out.rglob("*.tmp"))


def test_the_forkserver_preload_starts_no_thread_but_numpys():
    """Local workers are forked from a server that imported ``FORKSERVER_PRELOAD``: a thread running there at the
    fork would be missing in every worker, holding whatever lock it held. The preload must start no thread beyond
    what ``import numpy`` starts (its BLAS pool, fork-safe), and leave polars and pyarrow out."""
    from corpusslim.runtime.cluster import FORKSERVER_PRELOAD

    probe = ("import os, sys\nimport {}\nprint(len(os.listdir('/proc/self/task')), "
             "[m for m in ('polars', 'pyarrow') if m in sys.modules])")

    def threads_and_modules(modules: str) -> tuple[int, str]:
        out = subprocess.run([sys.executable, "-c", probe.format(modules)], capture_output=True, text=True,
                             check=True).stdout.split(maxsplit=1)
        return int(out[0]), out[1].strip()

    threads, imported = threads_and_modules(", ".join(FORKSERVER_PRELOAD))
    assert imported == "[]"
    assert threads == threads_and_modules("numpy")[0]
