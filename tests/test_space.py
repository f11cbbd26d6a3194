"""Property tests for every registered space plus a user-defined one: every round trip holds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supernas.errors import SupernasError
from supernas.space import Arch, Choice, SearchSpace, get_space, list_spaces

NB201_CSV = Path(__file__).parents[1].parent / "shared/data/nb201/accuracy.csv"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def custom_space() -> SearchSpace:
    """A user-defined space mixing int, float, str and bool options (size 3*3*2*2*1 = 36)."""
    return SearchSpace(
        "test_custom",
        [
            Choice("depth", (1, 2, 3)),
            Choice("ratio", (0.25, 0.5, 1.0)),
            Choice("act", ("relu", "gelu")),
            Choice("se", (True, False)),
            Choice("fixed", ("only",)),
        ],
    )


SPACE_NAMES = [*list_spaces(), "test_custom"]
SMALL = ["nb201", "test_custom"]
seeds = st.integers(min_value=0, max_value=2**63 - 1)


def n_diff(a: Arch, b: Arch) -> int:
    return sum(x != y for x, y in zip(a.values, b.values, strict=True))


def make(name: str) -> SearchSpace:
    """Rebuilt per test: str(arch) looks its formatter up by the space's name."""
    return custom_space() if name == "test_custom" else get_space(name)


@pytest.mark.parametrize("name", SPACE_NAMES)
@SETTINGS
@given(seed=seeds)
def test_round_trips(name: str, seed: int) -> None:
    space = make(name)
    a = space.sample(seed)
    assert a in space
    assert space.parse(str(a)) == a
    assert space.validate(str(a)) == a
    assert space.decode(space.encode(a)) == a
    vec = space.one_hot(a)
    assert vec.shape == (space.one_hot_size,) and vec.sum() == len(space.choices)
    assert space.from_one_hot(vec) == a
    back = Arch.from_json(json.loads(json.dumps(a.to_json(), allow_nan=False)))
    assert back == a and hash(back) == hash(a) and str(back) == str(a)
    assert space.arch(space.as_dict(a)) == a


@pytest.mark.parametrize("name", SPACE_NAMES)
@SETTINGS
@given(seed=seeds)
def test_sample_is_deterministic(name: str, seed: int) -> None:
    space = make(name)
    assert space.sample(seed) == space.sample(seed)
    assert space.sample(np.random.default_rng(seed)) == space.sample(seed)


@pytest.mark.parametrize("name", SPACE_NAMES)
@SETTINGS
@given(seed=seeds)
def test_mutate_and_neighbors(name: str, seed: int) -> None:
    space = make(name)
    a = space.sample(seed)
    m = space.mutate(a, seed)
    nbrs = space.neighbors(a)
    if name == "nb101":  # canonical cells: a one-value change may relabel (or be invalid)
        assert m in space and m != a and m in nbrs
        assert len(set(nbrs)) == len(nbrs) and a not in nbrs
        assert all(n in space for n in nbrs)
        return
    assert m in space and n_diff(a, m) == 1
    assert len(nbrs) == sum(len(c.options) - 1 for c in space.choices)
    assert len(set(nbrs)) == len(nbrs)
    assert all(n in space and n_diff(a, n) == 1 for n in nbrs)
    assert m in nbrs


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_unseeded_sampling_refused(name: str) -> None:
    with pytest.raises(SupernasError, match="seed"):
        make(name).sample(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", SMALL)
def test_enumerate_matches_size(name: str) -> None:
    space = make(name)
    archs = list(space.enumerate())
    assert len(archs) == space.size == len(set(archs))
    assert all(a in space for a in archs[:: max(1, len(archs) // 200)])


def test_sizes() -> None:
    assert get_space("resnet18").size == 9**8 == 43046721
    assert get_space("nb201").size == 5**6 == 15625
    assert custom_space().size == 36


def test_enumerate_refuses_resnet18() -> None:
    with pytest.raises(SupernasError, match="43,046,721"):
        next(get_space("resnet18").enumerate())


@pytest.mark.skipif(not NB201_CSV.exists(), reason="shared NB201 table not present")
def test_nb201_table_strings_round_trip() -> None:
    space = get_space("nb201")
    with NB201_CSV.open(newline="") as fh:
        texts = [row["arch"] for row in csv.DictReader(fh)]
    archs = [space.parse(t) for t in texts]
    assert [str(a) for a in archs] == texts
    assert len(set(archs)) == len(texts) == space.size


GOOD_NB201 = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD_NB201.replace("nor_conv_3x3", "conv_5x5"), "conv_5x5.*options: none"),
        (GOOD_NB201.replace("none~1", "none~0"), "must be 'op~1'"),
        (GOOD_NB201.replace("none~2", "none"), "must be 'op~2'"),
        ("|nor_conv_3x3~0|+|skip_connect~0|none~1|", "NB201 format"),
        ("|nor_conv_3x3~0|+|skip_connect~0|+|avg_pool_3x3~0|none~1|none~2|", "needs 2 edges"),
        ("nor_conv_3x3~0+|skip_connect~0|none~1|+|a~0|b~1|c~2|", "must be '|...|'"),
    ],
)
def test_nb201_malformed(text: str, match: str) -> None:
    assert get_space("nb201").parse(GOOD_NB201) in get_space("nb201")
    with pytest.raises(SupernasError, match=match):
        get_space("nb201").parse(text)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("k3w1-k5w0.5", "has 2 blocks; resnet18 needs 8"),
        ("-".join(["k3w1"] * 9), "has 9 blocks"),
        ("-".join(["k3w1"] * 7 + ["k4w1"]), "'4' is not an option.*options: 3, 5, 7"),
        ("-".join(["k3w1"] * 7 + ["k3w3"]), "'3' is not an option.*options: 0.5, 1, 2"),
        ("-".join(["k3w1"] * 7 + ["3x1"]), "is not 'k<kernel>w<width>'"),
    ],
)
def test_resnet18_malformed(text: str, match: str) -> None:
    space = get_space("resnet18")
    assert str(space.parse("-".join(["k3w1"] * 8))) == "-".join(["k3w1"] * 8)
    with pytest.raises(SupernasError, match=match):
        space.parse(text)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("depth=1,ratio=0.5", "has 2 parts.*needs 5"),
        ("depth=1,ratio=0.5,act=tanh,se=true,fixed=only", "'tanh' is not an option"),
        ("depth=1,rate=0.5,act=relu,se=true,fixed=only", "expected 'ratio=...'"),
    ],
)
def test_custom_malformed(text: str, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        custom_space().parse(text)


def test_unknown_space_lists_valid_names() -> None:
    with pytest.raises(SupernasError, match=r"valid: .*nb201.*resnet18"):
        get_space("nope")


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("resnet18", {"base_width": 0}, "base_width"),
        ("resnet18", {"stem": "huge"}, "stem"),
        ("resnet18", {"colour": 1}, "bad options"),
        ("nb201", {"C": 0}, "C must be"),
        ("nb201", {"num_classes": 1}, "num_classes"),
    ],
)
def test_bad_space_options(name: str, options: dict, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        get_space(name, **options)


def test_bool_and_int_options_stay_apart() -> None:
    space = custom_space()
    a = space.arch({"depth": 1, "ratio": 1.0, "act": "relu", "se": True, "fixed": "only"})
    assert a.values[3] is True and a.values[0] == 1
    with pytest.raises(SupernasError):
        space.arch({"depth": True, "ratio": 1.0, "act": "relu", "se": True, "fixed": "only"})
    with pytest.raises(SupernasError):
        space.arch({"depth": 1, "ratio": 1.0, "act": "relu", "se": 1, "fixed": "only"})


# -- spaces a user might define: any such space either is refused at once or round-trips ---
option_values = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.text(max_size=6),
    st.booleans(),
)
choice_names = st.text(min_size=1, max_size=6)


@st.composite
def user_spaces(draw: st.DrawFn) -> SearchSpace | None:
    n = draw(st.integers(1, 4))
    names = draw(st.lists(choice_names, min_size=n, max_size=n, unique=True))
    try:
        choices = [
            Choice(name, tuple(draw(st.lists(option_values, min_size=1, max_size=4))))
            for name in names
        ]
        return SearchSpace("test_generated", choices)
    except SupernasError:
        return None


@settings(max_examples=300, deadline=None)
@given(space=user_spaces(), seed=seeds)
def test_user_spaces_round_trip(space: SearchSpace | None, seed: int) -> None:
    if space is None:
        return
    a = space.sample(seed)
    assert a in space
    assert space.parse(str(a)) == a
    assert str(space.parse(str(a))) == str(a)
    assert space.decode(space.encode(a)) == a
    assert space.from_one_hot(space.one_hot(a)) == a
    back = Arch.from_json(json.loads(json.dumps(a.to_json())))
    assert back == a and hash(back) == hash(a)
    assert len(set(space.enumerate())) == space.size
