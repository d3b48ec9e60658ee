"""Figures are drawn from result payloads: the published results redraw every figure, and the report renders them."""
import pytest

from natrob import figures, paths
from natrob.errors import UnknownNameError
from natrob.report import build_report


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("NATROB_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("NATROB_FIGURES", raising=False)
    return tmp_path


def test_every_figure_is_redrawn_from_the_published_quick_results(artifacts):
    drawn = figures.render_all(paths.PUBLISHED / "quick", "quick-published")
    names = sorted(p.name for p in drawn)
    assert names == sorted(f"{name}-digits.png" for name in figures.registry())
    assert all(p.parent == artifacts / "figures" / "quick-published" and p.stat().st_size > 1000 for p in drawn)


def test_published_report_embeds_the_redrawn_figures(artifacts):
    page = build_report("quick", published=True).read_text()
    assert (artifacts / "report" / "quick-published" / "index.html").exists()
    assert page.count("data:image/png;base64") >= len(figures.registry())
    assert not (artifacts / "results").exists()  # nothing of a local run is read or written


def test_unknown_figure_names_the_known_ones(artifacts):
    with pytest.raises(UnknownNameError, match="02-fig1"):
        figures.save("02-fig9", {"dataset": {"name": "digits"}}, {})


def test_the_profile_travels_as_a_value_not_through_the_environment(artifacts, monkeypatch):
    """A stray NATROB_PROFILE changes nothing: the published report of quick goes where its profile says."""
    monkeypatch.setenv("NATROB_PROFILE", "tiny")
    build_report("quick", published=True)
    assert (artifacts / "report" / "quick-published" / "index.html").exists()
    assert not (artifacts / "report" / "tiny").exists() and not (artifacts / "figures" / "tiny").exists()
    import os
    assert os.environ["NATROB_PROFILE"] == "tiny"  # never switched and left behind
