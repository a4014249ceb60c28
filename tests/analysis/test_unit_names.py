"""Unit names: class selectivity by hand on a toy data set, WordNet naming on a hand-built hierarchy and on real
ImageNet synsets (WordNet 3.0 from Debian's wordnet-base or nltk; skipped without either)."""
import pytest
import torch

from convscope.analysis.unit_names import (ClassMeans, Hierarchy, class_selectivity, load_hierarchy, name_unit,
                                           read_wordnet_dir)


def test_class_means_and_selectivity_by_hand():
    # 3 maps, 3 classes, 6 images: per-image maxima (B, C) and labels
    maxima = torch.tensor([[4.0, 1.0, 0.0], [2.0, 1.0, 0.0],    # class 0
                           [0.0, 1.0, 0.0], [0.0, 1.0, 0.0],    # class 1
                           [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])   # class 2
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    acc = ClassMeans(maps=3, classes=4)  # class 3 has no image: left out
    acc.add(maxima[:4], labels[:4])
    acc.add(maxima[4:], labels[4:])
    means = acc.means()
    assert acc.images == 6 and torch.isnan(means[:, 3]).all()
    torch.testing.assert_close(means[:, :3].float(), torch.tensor([[3.0, 0.0, 0.5], [1.0, 1.0, 1.0],
                                                                   [0.0, 0.0, 0.0]]))
    sel = class_selectivity(means)
    # map 0: mu_max = 3, mu_rest = (0 + 0.5) / 2 = 0.25 -> (3 - 0.25) / (3 + 0.25) = 11/13
    torch.testing.assert_close(sel, torch.tensor([11 / 13, 0.0, 0.0]))
    assert class_selectivity(torch.tensor([[4.0, 0.0, 0.0]])).item() == 1.0  # one class only: fully selective


HAND = Hierarchy(
    parents={"animal": (), "dog": ("animal",), "cat": ("animal",), "poodle": ("dog",), "terrier": ("dog",),
             "tabby": ("cat",), "vehicle": (), "car": ("vehicle",), "cab": ("car",)},
    names={"dog": "dog", "poodle": "poodle", "terrier": "terrier", "tabby": "tabby cat", "cab": "taxi"})


def test_naming_on_a_hand_built_hierarchy():
    name = (lambda wnids: str(name_unit(wnids, HAND, min_depth=1)))
    assert name(["poodle"] * 9) == "poodle: 9 of 9"
    assert name(["poodle"] * 5 + ["terrier"] * 4) == "dog: 9 of 9"  # a bare majority is not enough for poodle
    assert name(["poodle"] * 6 + ["terrier"] * 2 + ["cab"]) == "poodle: 6 of 9"  # two thirds: the breed
    assert name(["poodle"] * 4 + ["terrier"] * 2 + ["tabby"] * 3) == "dog: 6 of 9"
    assert name(["poodle", "terrier", "tabby", "tabby", "cab", "cab", "cab", "car", "tabby"]) == "tabby cat: 3 of 9"
    assert name(["poodle", "terrier", "tabby", "cab"]) == "dog: 2 of 4"  # all different: what covers most
    assert HAND.depth("poodle") == 2 and HAND.ancestors("cab") == {"cab", "car", "vehicle"}


def test_reads_the_princeton_database_format(tmp_path):
    (tmp_path / "data.noun").write_text(
        "  1 This software and database is being provided\n"
        "00001740 03 n 01 entity 0 000 | that which exists\n"
        "02084071 05 n 02 dog 0 domestic_dog 0 002 @ 00001740 n 0000 ~ 02085374 n 0000 | a member of Canis\n"
        "02085374 05 n 01 toy_dog 0 001 @ 02084071 n 0000 | small dogs\n"
        "09999999 18 n 01 Fido 0 001 @i 02084071 n 0000 | an instance\n")
    h = read_wordnet_dir(tmp_path)
    assert h.parents["n02085374"] == ("n02084071",) and h.parents["n02084071"] == ("n00001740",)
    assert h.parents["n09999999"] == ("n02084071",) and h.name("n02085374") == "toy dog"


@pytest.fixture(scope="module")
def wordnet():
    h = load_hierarchy()
    if h is None:
        pytest.skip("WordNet 3.0 not installed (apt-get install wordnet-base, or nltk's wordnet corpus)")
    return h


def test_real_imagenet_synsets(wordnet):
    chihuahua, golden, tabby, sports_car, wagon, tench = ("n02085620", "n02099601", "n02123045", "n04285008",
                                                          "n02814533", "n01440764")
    assert wordnet.name(chihuahua) == "Chihuahua" and wordnet.name(golden) == "golden retriever"
    assert str(name_unit([chihuahua] * 4 + [golden] * 5, wordnet)) == "dog: 9 of 9"  # two breeds -> dog
    assert str(name_unit([chihuahua] * 2 + [golden] * 5 + [tabby, tench], wordnet)) == "dog: 7 of 9"
    assert str(name_unit([sports_car] * 3 + [wagon] * 3 + [tench] * 3, wordnet)) == "car: 6 of 9"
    assert str(name_unit([tench] * 3 + [golden, tabby, chihuahua, sports_car, wagon, "n03417042"], wordnet)) \
        == "vertebrate: 6 of 9"  # fish, dogs and a cat
    assert str(name_unit([tench] * 3 + [golden, tabby, sports_car, wagon, "n03417042", "n03100240"], wordnet)) \
        == "tench: 3 of 9"  # nothing specific covers two thirds: the commonest class
