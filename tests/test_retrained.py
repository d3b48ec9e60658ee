"""The tiny profile retrained here (not from the published weights): what a retrained run is checked against is the
study's claims (natrob.report.claims), not the digits of the published run, which another CPU's training moves. The
run is the notebooks the tiny claims read (03 and 06, whose models are every net but notebook 02's, 07's, 08's and
09's), so the suite stays within its time."""
import json

import pytest

from natrob import paths
from natrob.run.runner import main as run_all

pytestmark = pytest.mark.slow  # trains and runs every notebook of the tiny profile (minutes)


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    import os
    art = tmp_path_factory.mktemp("tiny-retrained")
    saved = os.environ.get("NATROB_ARTIFACTS")
    os.environ["NATROB_ARTIFACTS"] = str(art)
    try:
        from natrob.report.claims import CLAIMS
        read = sorted({f[:2] for c in CLAIMS if "tiny" in c.profiles for f in c.files})
        rc = run_all(["--profile", "tiny", "--weights", "train", "--no-report", "--only", *read])
        from natrob.report.claims import check_claims
        rows = check_claims("tiny", paths.results_dir("tiny"))
        runs = json.loads((paths.results_dir("tiny") / "_runs.json").read_text())
        reads = (paths.results_dir("tiny") / "_model_reads.jsonl").read_text().splitlines()
        trained = sorted(p.parent.name for p in paths.checkpoints_dir().rglob("last.pt"))
    finally:
        if saved is None:
            os.environ.pop("NATROB_ARTIFACTS", None)
        else:
            os.environ["NATROB_ARTIFACTS"] = saved
    return {"rc": rc, "rows": rows, "runs": runs, "reads": reads, "trained": trained, "notebooks": read}


def test_a_retrained_tiny_run_holds_every_claim(retrained):
    assert retrained["rc"] == 0 and retrained["notebooks"] == ["03", "06"]
    assert retrained["runs"]["_last_run"]["weights"] == "train" and retrained["trained"]
    bad = [r for r in retrained["rows"] if r["status"] != "holds"]
    assert retrained["rows"] and not bad, bad


def test_the_run_logs_the_models_it_read_as_the_published_manifest_lists_them(retrained):
    """What `natrob.run.weights publish` would copy from this run is in the published tiny manifest, under the same
    store entries and file names (keys hash the training spec, so a retrained run reads the same files)."""
    read = {json.loads(line)["file"] for line in retrained["reads"]}
    from natrob.run.weights import manifest
    m = manifest("tiny")
    assert m is not None
    listed = {r["file"] for r in m["weights"] if r["file"].endswith(".pt")}
    assert read and read <= listed, read - listed
