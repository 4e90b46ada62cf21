"""The README's protocol numbers are the recorded full run, and the recorded run is what the
shipped code and weights give (notebook 03, ``make protocol``; nbval checks the quick set)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from redestyle import accuracy, experiments, zoo
from redestyle.miniature import protocol, world

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "figures" / "protocol_full.json"


def _recorded() -> dict:
    return json.loads(RECORD.read_text())


def test_the_readme_quotes_the_recorded_full_run():
    readme = (ROOT / "README.md").read_text()
    blocks = dict(re.findall(r"<!-- protocol-full: (.+?) -->\n(.*?)\n<!-- /protocol-full -->", readme, re.S))
    expected = experiments.protocol_readme_tables(_recorded())
    assert set(blocks) == set(expected), "README: one block per table of protocol_readme_tables"
    for name, table in expected.items():
        assert blocks[name].strip() == table, f"README table {name!r} differs from figures/protocol_full.json"
    rec = _recorded()
    assert rec["set"] == "full" and rec["steps"] is None  # the official 300 baseline steps
    for r in rec["settings"].values():
        assert (r["n_people"], r["n_portraits"]) == (protocol.N_PEOPLE, protocol.N_PEOPLE * protocol.PER_PERSON)


@pytest.mark.slow
def test_the_recorded_full_run_is_what_the_shipped_weights_give():
    """Re-derive the cheap rows of the full set (reference rows and the paper's two schedules;
    the baseline's 300 steps per portrait are checked on the quick set by nbval)."""
    pset = protocol.heldout_set()
    models = zoo.build_models("mini", methods=["restyle_psp"])
    oracle = world.load_oracle()
    for setting in accuracy.POSTPROCESSING:
        destylizers = accuracy.protocol_destylizers(models, postprocessing=setting, schedules=("5-3-1", "6-4-2"),
                                                    restyle_iters=())
        faces = {m: accuracy.run_destylizer(d, pset.portraits, batch_size=40).faces for m, d in destylizers.items()}
        fresh = protocol.record(protocol.evaluate(faces, pset, oracle, avg_image=models.avg_image, baseline=None))
        recorded = _recorded()["settings"][setting]
        recorded = {**recorded, "paired": [], "rows": [r for r in recorded["rows"] if r["method"] in
                                                       {"photo (answer)", "average face", *faces}]}
        n, problems = protocol.compare_records(fresh, recorded)
        assert n == 3 * len(protocol.METRICS) * 4 and not problems, "\n".join(problems)
