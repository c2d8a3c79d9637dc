"""`make soak` in small: five minutes of random faults under churn with a fixed seed, in a
temporary folder, on an environment of its own (soak/run.py starts and stops it). Fails, with the
soak's own account of each broken invariant, when any invariant broke.

The soak runs as a process of its own, as `make soak` runs it: it tears everything down itself on
SIGTERM, which it gets if it overruns its time here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
SEED = 20261129
MINUTES = 5
# Set-up (about a minute), five minutes of faults, the last round's bound and the tear-down.
BUDGET = (MINUTES + 6) * 60


@pytest.mark.timeout(BUDGET + 180)
def test_soak_five_minutes_with_a_fixed_seed(tmp_path):
    out = tmp_path / "results"
    log = tmp_path / "soak.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "soak.run", "--seed", str(SEED), "--minutes", str(MINUTES), "--out", str(out)],
            cwd=TOP, stdout=sink, stderr=subprocess.STDOUT, env=os.environ.copy(),
        )
        try:
            code = process.wait(BUDGET)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # it reports what it saw and tears down
            code = process.wait(150)
    text = log.read_text(errors="replace")
    print(text[-6000:])
    assert code != 2, f"the soak could not set up its environment:\n{text[-3000:]}"
    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == SEED
    assert results["rounds"] > 0 and sum(results["faults"].values()) > 0, "no fault was injected"
    broken = [f"+{v['at_s']} s [{v['invariant']}] {v['problem']}" for v in results["violations"]]
    assert not broken and code == 0, "invariants broken:\n" + "\n".join(broken)
    assert not results["interrupted"], "the soak overran its time"
