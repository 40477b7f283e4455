"""A part that dies or hangs during a test ends that test by name, not by its timeout (tests/fixtures/health.py).

Each case runs an inner pytest session on the real parts (its own simulator and apiserver): the inner test breaks
a part, then waits longer than the watchdog needs, the way a test waits on a part it does not know is gone. If the
watchdog did not end the wait, the inner test would pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from testbed.process import repo_root

WAIT = 170  # longer than the watchdog's worst case (a minute), shorter than the inner timeout
ONE_SCREEN = 40

INNER_TESTS = {
    "test_killed.py": f'''
        import os, signal, time

        def test_a_killed_simulator(vcsim):
            os.kill(vcsim.process.pid, signal.SIGKILL)
            time.sleep({WAIT})

        def test_a_later_test_on_the_simulator(vcsim):
            pass

        def test_a_killed_apiserver(control_plane):
            os.kill(next(p for p in control_plane.processes if p.part == "kube-apiserver").pid, signal.SIGKILL)
            time.sleep({WAIT})
    ''',
    "test_stuck.py": f'''
        import os, signal, time

        def test_a_stuck_simulator(vcsim):
            os.kill(vcsim.process.pid, signal.SIGSTOP)  # alive, answering nothing: as deadlocked
            time.sleep({WAIT})
    ''',
}


def run_inner(tmp_path: Path, name: str) -> dict[str, tuple[str, str, float]]:
    """Run one inner test file; test name -> (outcome, failure message, seconds)."""
    here = tmp_path / name.removesuffix(".py")
    here.mkdir()
    (here / name).write_text(textwrap.dedent(INNER_TESTS[name]))
    (here / "pytest.ini").write_text("[pytest]\ntimeout = 300\n")
    junit = here / "junit.xml"
    plugins = ["workdir", "health", "vcsim", "kube"]
    env = {**os.environ, "PYTHONPATH": str(repo_root()), "VMSNAP_TESTBED_DIR": str(here / "testbed")}
    for var in ("VSPHERE_URL", "KUBECONFIG"):  # the inner session starts parts of its own
        env.pop(var, None)
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}", "-q",
                    *[arg for p in plugins for arg in ("-p", f"tests.fixtures.{p}")], str(here / name)],
                   cwd=here, env=env, capture_output=True, text=True, timeout=900)
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        outcome = "passed" if failure is None else "failed"
        message = "" if failure is None else (failure.text or failure.get("message") or "")
        # a session fixture's teardown error comes as a second entry of the last test: the first is the test's
        results.setdefault(case.get("name", ""), (outcome, message, float(case.get("time", 0))))
    return results


def test_a_part_that_dies_or_hangs_fails_the_test_by_name_with_its_log(tmp_path: Path):
    with ThreadPoolExecutor(2) as pool:
        killed, stuck = pool.map(lambda n: run_inner(tmp_path, n), ["test_killed.py", "test_stuck.py"])
    for name, (outcome, message, seconds) in {**killed, **stuck}.items():
        print(f"{name}: {outcome} in {seconds:.1f} s: {message.splitlines()[0] if message else ''}")

    outcome, message, _ = killed["test_a_killed_simulator"]
    assert outcome == "failed" and message.startswith("[vcsim] exited with code -9"), message
    assert "--- last lines of" in message and "vcsim.log" in message
    assert len(message.splitlines()) <= ONE_SCREEN

    outcome, message, _ = killed["test_a_later_test_on_the_simulator"]
    assert outcome == "failed" and message.startswith("[vcsim] exited with code -9"), message
    assert "broke during an earlier test" in message

    outcome, message, _ = killed["test_a_killed_apiserver"]
    assert outcome == "failed" and message.startswith("[kube-apiserver] exited with code -9"), message
    assert "kube-apiserver.log" in message and len(message.splitlines()) <= ONE_SCREEN

    outcome, message, _ = stuck["test_a_stuck_simulator"]
    assert outcome == "failed" and message.startswith("[vcsim] alive but did not answer its health probe"), message
    found = re.search(r"goroutine dump \(\d+ goroutines, taken with SIGQUIT\): (\S+goroutines.txt)", message)
    assert found, message
    dump = Path(found.group(1))
    assert tmp_path / "test_stuck" in dump.parents, "saved beside the inner session's logs"
    assert len(re.findall(r"^goroutine \d+ .*\[", dump.read_text(), re.M)) > 10, "every goroutine is in the dump"
    assert len(message.splitlines()) <= ONE_SCREEN
