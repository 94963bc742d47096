"""The title catalogue covers every category a detector can raise, each fit for a sheet name."""

from detectors.registry import ALL_DETECTORS
from paywatch.titles import CATEGORY_TITLES, category_title, detector_title


def test_every_category_has_a_title_that_fits_a_sheet_name():
    raised = {c for d in ALL_DETECTORS for c in d.categories}
    assert raised <= set(CATEGORY_TITLES), sorted(raised - set(CATEGORY_TITLES))
    assert all(len(t) <= 31 for t in CATEGORY_TITLES.values())
    assert len(set(CATEGORY_TITLES.values())) == len(CATEGORY_TITLES)


def test_unknown_names_still_read_as_words():
    assert category_title("some_new_category") == "Some new category"
    assert detector_title("PW101") == "PW101 · Pay model"
    assert detector_title("PW999") == "PW999"
