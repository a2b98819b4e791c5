"""Ray jobs through the job submission API: the working directory packed and uploaded as Ray
packs it (a zip named by its content's hash, files at its top level), the job submitted, its
logs followed until it ends. The job's exit status becomes the command's."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from saf.errors import RayError, UsageError
from saf.format import fmt_bytes
from saf.ray.dashboard import Dashboard

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
MAX_PACKAGE = 100 * 1024 * 1024  # Ray refuses bigger working directories
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache",
                ".ruff_cache", "node_modules"}


def pack(folder: Path) -> tuple[str, bytes]:
    """(package name, zip bytes) of `folder`: the same files give the same name, so an
    unchanged folder is uploaded once."""
    if not folder.is_dir():
        raise UsageError(f"--working-dir {folder}: not a folder")
    buffer = io.BytesIO()
    size = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(files):
                path = Path(root) / name
                if not path.is_file():
                    continue
                size += path.stat().st_size
                if size > MAX_PACKAGE:
                    raise UsageError(f"--working-dir {folder} holds more than "
                                     f"{fmt_bytes(MAX_PACKAGE, digits=0)}; Ray refuses "
                                     "working directories that big")
                info = zipfile.ZipInfo(str(path.relative_to(folder)), (1980, 1, 1, 0, 0, 0))
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    return f"_ray_pkg_{hashlib.sha1(data).hexdigest()[:16]}.zip", data


@dataclass
class Submitted:
    job_id: str
    status: str
    exit_code: int
    message: str = ""


async def submit(dashboard: Dashboard, entrypoint: str, working_dir: Path | None) -> str:
    """Upload the working directory (unless Ray has it already) and submit; the job's id."""
    body: dict[str, object] = {"entrypoint": entrypoint}
    if working_dir is not None:
        name, data = pack(working_dir)
        if not await dashboard.has_package(f"gcs/{name}"):
            await dashboard.put_package(f"gcs/{name}", data)
        body["runtime_env"] = {"working_dir": f"gcs://{name}"}
    answer = await dashboard.submit(body)
    job_id = answer.get("submission_id") or answer.get("job_id") if isinstance(
        answer, dict) else None
    if not isinstance(job_id, str):
        raise RayError(f"the Ray dashboard did not return a job id ({str(answer)[:200]})")
    return job_id


async def follow(dashboard: Dashboard, job_id: str, out: Callable[[str], None], *,
                 interval: float = 0.5) -> Submitted:
    """Print the job's log as it grows until the job ends; its final state."""
    shown = 0
    while True:
        info = await dashboard.job(job_id)
        status = info.get("status") if isinstance(info, dict) else None
        logs = await dashboard.job_logs(job_id)
        text = logs.get("logs") if isinstance(logs, dict) else None
        if isinstance(text, str) and len(text) > shown:
            out(text[shown:])
            shown = len(text)
        if status in TERMINAL:
            code = info.get("driver_exit_code")
            if status == "SUCCEEDED":
                code = 0
            elif not isinstance(code, int) or isinstance(code, bool) or not 0 < code < 256:
                code = 1
            message = info.get("message")
            return Submitted(job_id, str(status), code,
                             message if isinstance(message, str) else "")
        if not isinstance(status, str):
            raise RayError(f"the Ray dashboard gave no state for job {job_id}")
        await asyncio.sleep(interval)
