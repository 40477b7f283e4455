"""Put on a product process's PYTHONPATH by `--profile` (bench.overhead): profiles the process's main thread (the
asyncio loop: workflow tasks, the Temporal SDK's Python side) with pyinstrument from start to exit and writes the
text report to $VMSNAP_PROFILE_OUT and the session beside it (`pyinstrument --load FILE.pyisession --show-all`).
Activity threads are not covered. Needs pyinstrument in the venv (`.venv/bin/pip install pyinstrument`; not a
project dependency)."""

import atexit
import os

_out = os.environ.get("VMSNAP_PROFILE_OUT")
if _out:
    from pyinstrument import Profiler

    _profiler = Profiler(interval=0.005, async_mode="disabled")
    _profiler.start()

    def _write() -> None:
        session = _profiler.stop()
        session.save(_out + ".pyisession")
        with open(_out, "w") as f:
            f.write(_profiler.output_text(unicode=True, color=False, show_all=False, timeline=False))

    atexit.register(_write)
