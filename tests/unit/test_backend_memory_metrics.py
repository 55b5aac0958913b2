"""The replica memory collector reads every process's RSS from /proc (a fake /proc here)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from app.metrics import ReplicaMemoryCollector, resident_memory_by_pid


def fake_proc(root: Path, processes: dict[str, str]) -> Path:
    for pid, status in processes.items():
        (root / pid).mkdir()
        (root / pid / "status").write_text(status)
    (root / "self").mkdir()  # not a pid: ignored
    return root


def test_rss_of_every_process_in_bytes(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            "1": "Name:\tgunicorn\nVmRSS:\t   30000 kB\n",
            "7": "Name:\tgunicorn\nVmPeak:\t1 kB\nVmRSS:\t   50000 kB\n",
            "9": "Name:\tkthread\n",  # no VmRSS line: no sample
        },
    )
    assert resident_memory_by_pid(proc) == {"1": 30000 * 1024, "7": 50000 * 1024}


def test_collector_exports_one_sample_per_pid(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {"1": "VmRSS:\t1 kB\n", "2": "VmRSS:\t2 kB\n"})
    registry = CollectorRegistry()
    registry.register(ReplicaMemoryCollector(proc))
    text = generate_latest(registry).decode()
    assert 'process_resident_memory_bytes{pid="1"} 1024.0' in text
    assert 'process_resident_memory_bytes{pid="2"} 2048.0' in text
