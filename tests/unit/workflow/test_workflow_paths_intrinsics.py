"""JSONPath subset, payload templates and intrinsic functions (AWS documentation examples)."""

from __future__ import annotations

import pytest

from sluice.local.workflow import StatesError, jsonpath
from sluice.local.workflow.intrinsics import evaluate, render

DOC = {"a": {"b": [10, 20, 30]}, "items": [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}], "n": None}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.a.b", [10, 20, 30]),
        ("$.a.b[1]", 20),
        ("$.a.b[-1]", 30),
        ("$['a']['b'][0]", 10),
        ("$.items[*].id", [1, 2]),
        ("$.a.b[0:2]", [10, 20]),
        ("$..id", [1, 2]),
        ("$.n", None),
    ],
)
def test_jsonpath_get_supported_syntax_returns_node(path: str, expected: object) -> None:
    assert jsonpath.get(DOC, path) == expected


def test_jsonpath_get_missing_definite_path_raises_states_runtime() -> None:
    with pytest.raises(StatesError) as info:
        jsonpath.get(DOC, "$.a.missing")
    assert info.value.error == "States.Runtime"
    assert "$.a.missing" in info.value.cause


def test_jsonpath_put_nested_path_creates_objects_and_keeps_input() -> None:
    original = {"x": 1}
    result = jsonpath.put(original, "$.deep.er.value", {"r": True})
    assert result == {"x": 1, "deep": {"er": {"value": {"r": True}}}}
    assert original == {"x": 1}


def test_jsonpath_put_root_replaces_document() -> None:
    assert jsonpath.put({"x": 1}, "$", [1]) == [1]


def test_jsonpath_filter_expression_is_rejected() -> None:
    with pytest.raises(jsonpath.PathSyntaxError):
        jsonpath.parse("$.items[?(@.id > 1)]")


def test_render_template_resolves_paths_context_and_intrinsics() -> None:
    template = {
        "static": "s",
        "id.$": "$.items[0].id",
        "exec.$": "$$.Execution.Name",
        "msg.$": "States.Format('item {} of {}', $.items[1].id, $$.Execution.Name)",
        "nested": {"list": [{"v.$": "$.items[1].v"}]},
    }
    result = render(template, DOC, {"Execution": {"Name": "run-1"}})
    assert result == {
        "static": "s",
        "id": 1,
        "exec": "run-1",
        "msg": "item 2 of run-1",
        "nested": {"list": [{"v": "y"}]},
    }


NUMBERS = {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]}


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        # The examples of https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
        (
            "States.Format('Welcome to {} {}\\'s playlist.', $.firstName, $.lastName)",
            {"firstName": "John", "lastName": "Doe"},
            "Welcome to John Doe's playlist.",
        ),
        ("States.StringToJson($.someString)", {"someString": '{"number": 20}'}, {"number": 20}),
        ("States.JsonToString($.x)", {"x": {"a": [1, "b"], "c": None}}, '{"a":[1,"b"],"c":null}'),
        (
            "States.Array('Foo', 2020, $.someJson, null)",
            {"someJson": {"random": "abcdefg"}},
            ["Foo", 2020, {"random": "abcdefg"}, None],
        ),
        (
            "States.ArrayPartition($.inputArray, 4)",
            NUMBERS,
            [[1, 2, 3, 4], [5, 6, 7, 8], [9]],
        ),
        ("States.ArrayContains($.inputArray, 5)", NUMBERS, True),
        ("States.ArrayContains($.inputArray, 50)", NUMBERS, False),
        ("States.ArrayRange(1, 9, 2)", {}, [1, 3, 5, 7, 9]),
        ("States.ArrayGetItem($.inputArray, 5)", NUMBERS, 6),
        ("States.ArrayLength($.inputArray)", NUMBERS, 9),
        ("States.ArrayUnique($.a)", {"a": [1, 2, 3, 3, 3, 3, 3, 3, 4]}, [1, 2, 3, 4]),
        ("States.Base64Encode($.input)", {"input": "Data to encode"}, "RGF0YSB0byBlbmNvZGU="),
        ("States.Base64Decode($.b)", {"b": "RGF0YSB0byBlbmNvZGU="}, "Data to encode"),
        (
            "States.Hash($.Data, $.Algorithm)",
            {"Data": "input data", "Algorithm": "SHA-1"},
            "aaff4a450a104cd177d28d18d74485e8cae074b7",
        ),
        (
            "States.JsonMerge($.json1, $.json2, false)",
            {
                "json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
                "json2": {"a": {"a3": 1, "a4": 2}, "c": 3},
            },
            {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3},
        ),
        ("States.MathAdd($.value1, $.step)", {"value1": 111, "step": -1}, 110),
        ("States.StringSplit($.s, $.d)", {"s": "1,2,3,4,5", "d": ","}, ["1", "2", "3", "4", "5"]),
        (
            "States.StringSplit($.s, $.d)",
            {"s": "This.is+a,test=string", "d": ".+,="},
            ["This", "is", "a", "test", "string"],
        ),
        ("States.ArrayLength(States.Array(1, 2, States.MathAdd(1, 2)))", {}, 3),
        ("States.Format('literal \\{\\} and {}', 'x')", {}, "literal {} and x"),
    ],
)
def test_intrinsic_documented_examples_give_documented_results(
    expression: str, data: object, expected: object
) -> None:
    assert evaluate(expression, data, {}) == expected


def test_intrinsic_math_random_stays_in_range_and_seed_repeats() -> None:
    values = {evaluate("States.MathRandom(1, 5)", {}, {}) for _ in range(50)}
    assert values <= {1, 2, 3, 4}
    seeded = [evaluate("States.MathRandom(1, 1000, 7)", {}, {}) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_intrinsic_uuid_is_a_fresh_v4() -> None:
    first, second = evaluate("States.UUID()", {}, {}), evaluate("States.UUID()", {}, {})
    assert first != second
    assert len(first) == 36
    assert first[14] == "4"


@pytest.mark.parametrize(
    "expression",
    [
        "States.Nope(1)",
        "States.Format('{} {}', 'one')",
        "States.ArrayPartition($.inputArray, 0)",
        "States.Hash('x', 'SHA-999')",
        "States.JsonMerge($.a, $.a, true)",
        "States.Format('unterminated)",
    ],
)
def test_intrinsic_bad_call_raises_intrinsic_failure(expression: str) -> None:
    with pytest.raises(StatesError) as info:
        evaluate(expression, {"inputArray": [1], "a": {}}, {})
    assert info.value.error == "States.IntrinsicFailure"
