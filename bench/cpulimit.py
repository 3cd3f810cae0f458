"""CPU quotas for benchmark processes: one cgroup per process, each with the same quota.

On a small machine the processes being compared share every core with the database and the
feed server, so N of them cannot show N times the throughput of one: they only split the
cores. Giving each one a fixed quota (say half a core) makes one against two a fair question,
whether the design scales out, with the database and the server left the remaining cores.

A process joins its cgroup itself (join), before it starts any other process, so its
forkserver and the parser processes forked from it inherit the group; member() checks that.
cgroup v1 (the cpu controller's cpu.cfs_quota_us) and v2 (cpu.max) are both handled; where
neither is writable, CpuLimits.create says why and the caller runs without quotas. Every group
this run made is removed by close(), any process still in one moved back first; groups left by
a run that was killed outright are removed by the next run, once empty.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
PREFIX = "tidings-bench-"


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:  # one write(2), as the kernel expects
        handle.write(value)


def _cgroup_of(pid: int | str, version: int) -> str | None:
    """The process's cgroup path (relative to the hierarchy's mount) in the cpu hierarchy."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if (version == 2 and number == "0") or (version == 1 and "cpu" in controllers.split(",")):
            return path
    return None


class CpuLimits:
    """A cgroup for this run under the cpu hierarchy's root, holding one group per process."""

    def __init__(self, mount: Path, version: int) -> None:
        self.mount, self.version = mount, version
        self.origin = mount / (_cgroup_of("self", version) or "/").lstrip("/")
        self.run = mount / f"{PREFIX}{uuid.uuid4().hex[:10]}"
        self.groups: list[Path] = []

    @classmethod
    def create(cls) -> CpuLimits | str:
        """Limits ready to hand out groups, or the reason there are none on this machine."""
        if (V1 / "cpu.cfs_quota_us").exists():
            mount, version = V1.resolve(), 1
        elif "cpu" in _read(V2 / "cgroup.controllers").split():
            mount, version = V2, 2
        else:
            return "no cgroup cpu controller (v1 cpu.cfs_quota_us or v2 cpu.max) found"
        limits = cls(mount, version)
        limits.sweep()
        try:
            if version == 2 and "cpu" not in _read(mount / "cgroup.subtree_control").split():
                _write(mount / "cgroup.subtree_control", "+cpu")
            limits.run.mkdir()
            if version == 2:
                _write(limits.run / "cgroup.subtree_control", "+cpu")
        except OSError as exc:
            limits.close()
            return f"cgroup v{version} at {mount} is not writable here ({exc.strerror or exc})"
        return limits

    def group(self, name: str, cores: float) -> Path:
        """A new group whose processes together get at most `cores` CPUs."""
        path = self.run / name
        path.mkdir()
        self.groups.append(path)
        quota = max(1_000, round(cores * PERIOD_US))
        if self.version == 1:
            _write(path / "cpu.cfs_period_us", str(PERIOD_US))
            _write(path / "cpu.cfs_quota_us", str(quota))
        else:
            _write(path / "cpu.max", f"{quota} {PERIOD_US}")
        return path

    def member(self, pid: int, group: Path) -> bool:
        """Whether the process is in the group (read from /proc/<pid>/cgroup)."""
        return _cgroup_of(pid, self.version) == "/" + str(group.relative_to(self.mount))

    def throttling(self, group: Path) -> dict[str, float]:
        """The group's CFS periods so far, those that hit the quota, and the seconds held back."""
        stat = dict(line.split() for line in _read(group / "cpu.stat").splitlines() if " " in line)
        throttled = (int(stat.get("throttled_time", 0)) / 1e9 if self.version == 1
                     else int(stat.get("throttled_usec", 0)) / 1e6)
        return {"periods": int(stat.get("nr_periods", 0)),
                "throttled": int(stat.get("nr_throttled", 0)), "throttled_s": throttled}

    def close(self) -> None:
        """Remove every group of this run, moving any process still in one back first."""
        for path in [*reversed(self.groups), self.run]:
            self._remove(path)
        self.groups.clear()

    def sweep(self) -> None:
        """Remove the groups of earlier runs that were killed before they could (empty ones)."""
        for stale in self.mount.glob(PREFIX + "*"):
            for path in [*sorted(stale.iterdir(), reverse=True), stale]:
                if path.is_dir() and not _read(path / "cgroup.procs").split():
                    with contextlib.suppress(OSError):
                        path.rmdir()

    def _remove(self, path: Path) -> None:
        for _ in range(50):
            if not path.exists():
                return
            for pid in _read(path / "cgroup.procs").split():
                with contextlib.suppress(OSError):  # gone meanwhile
                    _write(self.origin / "cgroup.procs", pid)
            try:
                path.rmdir()
                return
            except OSError:  # a process was exiting, or a child group is left: try again
                time.sleep(0.1)
        print(f"could not remove the cgroup {path}", flush=True)


def join(group: str | Path) -> None:
    """Move the calling process into the group; processes it starts afterwards inherit it."""
    _write(Path(group) / "cgroup.procs", str(os.getpid()))


def descendants(pid: int) -> list[int]:
    """The process and every process under it (from /proc's parent ids)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
