"""What tells a process that a mounted file changed (a renewed certificate in a Secret volume), without reading it."""

from __future__ import annotations

import os
from pathlib import Path

FileStamp = tuple[int, int, int, int]


def file_stamp(path: Path) -> FileStamp:
    """Device, inode, mtime and size. os.stat follows symlinks: a Secret volume swaps its `..data` link, which changes
    device/inode. Raises OSError when the file cannot be read."""
    found = os.stat(path)
    return (found.st_dev, found.st_ino, found.st_mtime_ns, found.st_size)
