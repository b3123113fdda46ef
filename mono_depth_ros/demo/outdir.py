"""The demo's output directory: it owns a directory marked with :data:`~mono_depth_ros.demo.common.MARKER`,
never writes into one it did not make (unless ``overwrite``), and only ever replaces its own entries."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, List

from .common import ENTRIES, MARKER, DemoError, Log


def check_out_dir(out: "str | Path", overwrite: bool = False) -> Path:
    """The checks of :func:`prepare_out_dir`, writing nothing: ``out`` is missing, empty, the demo's own
    (it holds :data:`MARKER`), or (with ``overwrite``) any directory; never a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(True for _ in out.iterdir()) and not (out / MARKER).is_file() and not overwrite:
        raise DemoError(f"--out {out} exists and was not made by the demo (no {MARKER} file in it); "
                        "refusing to write into it. Choose another --out, or pass --overwrite (it then "
                        f"replaces only the demo's own entries: {', '.join(ENTRIES[:-1])})")
    return out


def _as_made_by_mkdir(path: Path) -> None:
    """mkdtemp makes 0700 folders; give ``path`` the mode ``mkdir`` would (0777 less the umask), so a demo
    output moved into place is as readable as any folder the user makes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)


def _swap_in(staging: Path, out: Path, log: Log) -> None:
    """Move the finished demo output from ``staging`` into ``out``: only the demo's own entries of ``out``
    are replaced (other files stay); on any failure the previous entries are put back."""
    if not out.exists():
        os.replace(staging, out)
        return
    if any(True for _ in out.iterdir()):
        log(f"replacing the previous demo output in {out}" if (out / MARKER).is_file() else
            f"--overwrite: writing the demo's entries into {out} (other files are left alone)")

    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.demo-old-", dir=str(out.parent)))
    old: List[str] = []
    new: List[str] = []
    try:
        for name in ENTRIES:
            p = out / name
            if p.exists() or p.is_symlink():
                os.replace(p, trash / name)
                old.append(name)
        for child in sorted(staging.iterdir()):
            os.replace(child, out / child.name)
            new.append(child.name)
    except BaseException:
        for name in new:   # roll back: the new entries go, the previous ones come back
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists() or p.is_symlink():
                p.unlink()
        for name in old:
            os.replace(trash / name, out / name)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


def prepare_out_dir(out: "str | Path", overwrite: bool = False, log: Log = print) -> Path:
    """Make ``out`` the demo's directory. A directory the demo made (it holds :data:`MARKER`) is reused: its
    demo entries are removed. An empty or missing one is created. Anything else is refused unless
    ``overwrite`` (even then only the demo's own entries are replaced; nothing else is touched)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        contents = [p for p in out.iterdir()]
        if contents and not (out / MARKER).is_file():
            if not overwrite:
                raise DemoError(f"--out {out} exists and was not made by the demo (no {MARKER} file in it); "
                                "refusing to write into it. Choose another --out, or pass --overwrite (it then "
                                f"replaces only the demo's own entries: {', '.join(ENTRIES[:-1])})")
            log(f"--overwrite: writing the demo's entries into {out} (other files are left alone)")
        elif contents:
            log(f"replacing the previous demo output in {out}")
        for name in ENTRIES:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"made_by": "mono-depth demo", "time": time.time()}) + "\n")
    return out


def _rebase(p: Any, staging: Path, out: Path) -> Any:
    if isinstance(p, Path):
        try:
            return out / p.relative_to(staging)
        except ValueError:
            return p
    return p
