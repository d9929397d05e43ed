"""tools/iam_proof.py, the plumbing of `make iam-proof`: which statements it removes, how it
removes one from a copy of the templates, which tests it runs for each role, and the table it
writes. (The proof itself runs the tests against a runtime: `make iam-proof`.)"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tools import iam_proof
from tools.templates import DEPLOY, load_template, template_paths

REPO = Path(__file__).resolve().parents[2]

TOY = """\
Resources:
  Function:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../fn/
      Role: !GetAtt FunctionRole.Arn
  FunctionRole:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: toy
          PolicyDocument:
            Statement:
              - Sid: ReadThings
                Effect: Allow
                Action: [s3:GetObject]
                # the things it reads
                Resource: !Sub "arn:aws:s3:::${Bucket}/*"
              # Writes go here.
              - Sid: WriteThings
                Effect: Allow
                Action: s3:PutObject
                Resource: "arn:aws:s3:::b/*"
  OtherRole:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: other
          PolicyDocument:
            Statement:
              - Sid: ReadThings
                Effect: Allow
                Action: s3:GetObject
                Resource: "*"
"""


def _statements(path: Path, role_id: str) -> list[dict[str, Any]]:
    document = load_template(path)["Resources"][role_id]["Properties"]["Policies"][0]
    statements: list[dict[str, Any]] = document["PolicyDocument"]["Statement"]
    return statements


def test_remove_statement_takes_out_exactly_one_statement_of_one_role(tmp_path: Path) -> None:
    text = iam_proof.remove_statement(TOY, "FunctionRole", "ReadThings")
    path = tmp_path / "toy.yaml"
    path.write_text(text, "utf-8")
    assert [s["Sid"] for s in _statements(path, "FunctionRole")] == ["WriteThings"]
    # The same Sid in another role stays.
    assert [s["Sid"] for s in _statements(path, "OtherRole")] == ["ReadThings"]
    text = iam_proof.remove_statement(TOY, "FunctionRole", "WriteThings")
    path.write_text(text, "utf-8")
    assert [s["Sid"] for s in _statements(path, "FunctionRole")] == ["ReadThings"]


@pytest.mark.parametrize(
    ("role_id", "sid", "message"),
    [
        ("NoSuchRole", "ReadThings", "resource NoSuchRole not found"),
        ("FunctionRole", "NoSuchSid", "0 statements with Sid NoSuchSid"),
    ],
)
def test_remove_statement_unknown_names_refused(role_id: str, sid: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        iam_proof.remove_statement(TOY, role_id, sid)


def test_removal_check_refuses_a_result_that_changed_more() -> None:
    # The text edit is checked by parsing both texts: here it also touched another role.
    good = iam_proof.remove_statement(TOY, "FunctionRole", "ReadThings")
    wrong = good.replace('Resource: "*"', 'Resource: "arn:aws:s3:::b/*"')
    with pytest.raises(ValueError, match="changed more than that statement"):
        iam_proof._check_removed(TOY, wrong, "FunctionRole", "ReadThings")


def test_every_statement_of_the_templates_removable_alone() -> None:
    statements = iam_proof.role_statements(_translated())
    for statement in statements:
        text = template_paths()[statement.stack].read_text("utf-8")
        # remove_statement checks the result is the template minus exactly that statement.
        iam_proof.remove_statement(text, statement.role_id, statement.sid)
    assert len(statements) > 50


def _translated() -> dict[str, dict[str, Any]]:
    from tools.templates import translate

    return {name: translate(path) for name, path in template_paths().items()}


def test_every_assumed_role_has_tests_and_they_exist() -> None:
    statements = iam_proof.role_statements(_translated())
    roles = {(s.stack, s.role_id) for s in statements}
    assert roles == set(iam_proof.ROLE_TESTS)
    users = {s.used_by.split()[0] for s in statements}
    assert users == {"function", "state", "schedule"}
    for tests in iam_proof.ROLE_TESTS.values():
        for test in tests:
            path, name = test.split("[")[0].split("::")
            tree = ast.parse((REPO / path).read_text("utf-8"))
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert name in names, test


def test_write_copy_links_artefacts_and_removes_only_the_statement(tmp_path: Path) -> None:
    statements = iam_proof.role_statements(_translated())
    (manifests,) = [s for s in statements if s.key == "output/FunctionRole/ReadFileManifests"]
    deploy = iam_proof.write_copy(tmp_path, manifests)
    # The copy's relative CodeUri (../../services/output/) resolves through the links.
    assert (deploy / "services" / ".." / ".." / "services" / "output").resolve().is_dir()
    copied = load_template(deploy / "services" / "output.yaml")
    original = load_template(template_paths()["output"])
    sids = [
        s["Sid"]
        for s in copied["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
            "Statement"
        ]
    ]
    assert "ReadFileManifests" not in sids
    for name in ("platform", "ingest", "validate", "transform", "orchestration"):
        path = template_paths()[name]
        assert (deploy / path.relative_to(DEPLOY)).read_text("utf-8") == path.read_text("utf-8")
    # Written again without a statement, the copy is the templates again.
    iam_proof.write_copy(tmp_path, None)
    assert load_template(deploy / "services" / "output.yaml") == original


def _toy_statement(sid: str) -> iam_proof.RoleStatement:
    return iam_proof.RoleStatement(
        stack="output",
        role_id="FunctionRole",
        role_name="sluice-${Stage}-${AWS::Region}-output",
        used_by="function sluice-${Stage}-output",
        sid=sid,
        actions=("s3:GetObject",),
        resources=("arn:aws:s3:::b/*",),
    )


def test_table_names_the_failed_test_or_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needed, kept, bare, pending, skipped = (
        _toy_statement(s) for s in ("Needed", "Kept", "Bare", "Pending", "Skipped")
    )
    reasons = {"Kept": "the runtime writes logs itself", "Skipped": "no X-Ray locally"}
    monkeypatch.setattr(iam_proof, "KEPT", reasons)
    results = {
        needed.key: {"failed": ["test_replay"], "tests": ["test_replay"], "seconds": 1},
        kept.key: {"failed": [], "tests": ["test_replay"], "seconds": 1},
        bare.key: {"failed": [], "tests": ["test_replay"], "seconds": 1},
    }
    doc = tmp_path / "security.md"
    doc.write_text(f"# x\n\n{iam_proof.TABLE_BEGIN}\nold\n{iam_proof.TABLE_END}\n\nafter\n")
    statements = [needed, kept, bare, pending, skipped]
    iam_proof.write_table(statements, results, doc)
    text = doc.read_text("utf-8")
    assert "old" not in text
    assert text.endswith("after\n")
    assert "| `output` (function) | `Needed` | `s3:GetObject` | `test_replay` fails |" in text
    assert "no test fails; kept: the runtime writes logs itself" in text
    assert "| `Bare` | `s3:GetObject` | **no test fails** |" in text
    assert "| `Pending` | `s3:GetObject` | not run yet |" in text
    assert "| `Skipped` | `s3:GetObject` | not run; kept: no X-Ray locally |" in text
    # A statement no test needs and without a reason makes the proof fail.
    assert iam_proof.unjustified(statements, results) == [bare.key]


def test_table_without_markers_refused(tmp_path: Path) -> None:
    doc = tmp_path / "security.md"
    doc.write_text("# no table here\n")
    with pytest.raises(ValueError, match="markers"):
        iam_proof.write_table([], {}, doc)
