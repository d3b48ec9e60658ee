"""Figures are drawn from result payloads: the published results redraw every figure, and the report renders them."""
import os

import pytest

from natrob.report import figures
from natrob.errors import UnknownNameError
from natrob.report import build_report


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The published quick report, rendered once (it redraws every figure from reference-results/quick/), with a
    stray NATROB_PROFILE in the environment that must change nothing."""
    art = tmp_path_factory.mktemp("published")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NATROB_ARTIFACTS", str(art))
        mp.delenv("NATROB_FIGURES", raising=False)
        mp.setenv("NATROB_PROFILE", "tiny")
        page = build_report("quick", published=True).read_text()
        stray = os.environ["NATROB_PROFILE"]
    return {"art": art, "page": page, "stray": stray}


def test_every_figure_is_redrawn_from_the_published_quick_results(published):
    drawn = sorted((published["art"] / "figures" / "quick-published").glob("*.png"))
    assert sorted(p.name for p in drawn) == sorted(f"{name}-digits.png" for name in figures.registry())
    assert all(p.stat().st_size > 1000 for p in drawn)


def test_published_report_embeds_the_redrawn_figures(published):
    assert (published["art"] / "report" / "quick-published" / "index.html").exists()
    assert published["page"].count("data:image/png;base64") >= len(figures.registry())
    assert not (published["art"] / "results").exists()  # nothing of a local run is read or written


def test_the_profile_travels_as_a_value_not_through_the_environment(published):
    """The stray NATROB_PROFILE=tiny changed nothing, and the report never switched it and left it behind."""
    art = published["art"]
    assert not (art / "report" / "tiny").exists() and not (art / "figures" / "tiny").exists()
    assert published["stray"] == "tiny"


def test_unknown_figure_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="02-fig1"):
        figures.save("02-fig9", {"dataset": {"name": "digits"}}, {})


def test_every_section_with_results_says_which_data_its_numbers_used(published):
    """Each chapter section that read a result file names its data under its title (the quick profile: digits)."""
    import re
    from natrob.report.sections import sections
    page = published["page"]
    lines = re.findall(r'<h2 id="([^"]+)">.*?</h2>\s*(<p class="data">.*?</p>)?', page, re.S)
    with_results = {s.id for s in sections() if s.results}
    named = {sid for sid, data in lines if data and "scikit-learn digits" in data}
    assert with_results and with_results <= named


def test_data_not_of_the_papers_protocol_is_flagged():
    from natrob.report import data_used
    split = {"name": "mnist-testsplit", "protocol": "NOT the paper's protocol: the 10k MNIST test images split"}
    found = [{"dataset": split}, {"dataset": dict(split)}, {"model": "no dataset recorded"},
             {"dataset": {"name": "mnist", "protocol": "MNIST official 60k train / 10k test (paper protocol)"}}]
    used = data_used(found)
    assert [(d["name"], d["paper"]) for d in used] == [("mnist-testsplit", False), ("mnist", True)]
