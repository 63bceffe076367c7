"""Label scheme as data and the study's merge rule."""

import numpy as np
import pytest

from limbseg.labels import DEFAULT_SCHEME, LabelScheme, merge_masks


def test_default_scheme_is_the_studys():
    assert DEFAULT_SCHEME.to_dataset_labels() == {"background": 0, "tibia": 1, "femur": 2, "fibula": 3, "pelvis": 4}
    assert DEFAULT_SCHEME.num_classes == 5
    assert DEFAULT_SCHEME.name_of(3) == "fibula"


def test_scheme_round_trips_through_json_and_dataset_labels():
    again = LabelScheme.from_json(DEFAULT_SCHEME.to_json())
    assert again == DEFAULT_SCHEME
    other = LabelScheme.from_json({"background": 0, "patella": 2, "talus": 1})
    assert other.names == ["talus", "patella"] and other.num_classes == 3


def test_scheme_rejects_duplicates():
    with pytest.raises(ValueError):
        LabelScheme.from_names({"a": 1, "b": 1})


def test_merge_overlap_becomes_background_by_default():
    a = np.zeros((4, 4, 1), bool)
    b = np.zeros((4, 4, 1), bool)
    a[:2] = True
    b[1:3] = True
    labels, n = merge_masks({"tibia": a, "femur": b})
    assert n == 4
    assert labels[0, 0, 0] == 1 and labels[1, 0, 0] == 0 and labels[2, 0, 0] == 2


def test_merge_priority_first_listed_wins():
    a = np.ones((2, 2, 2), bool)
    b = np.ones((2, 2, 2), bool)
    labels, n = merge_masks({"tibia": a, "femur": b}, priority=["femur", "tibia"])
    assert n == 8 and (labels == 2).all()
    labels, _ = merge_masks({"tibia": a, "femur": b}, priority=["tibia"])
    assert (labels == 1).all()


def test_structure_boxes_match_find_objects():
    from scipy import ndimage

    from limbseg.labels import nonzero_box, structure_boxes

    rng = np.random.default_rng(3)
    a = np.zeros((40, 30, 20), np.uint8)
    a[5:30, 4:25, 3:17] = (rng.random((25, 21, 14)) < 0.02) * rng.integers(1, 4, (25, 21, 14))
    assert structure_boxes(a, 5) == ndimage.find_objects(a, max_label=5)
    assert structure_boxes(np.zeros((4, 4, 4), np.uint8), 2) == [None, None]
    assert nonzero_box(np.zeros((3, 3, 3))) is None
