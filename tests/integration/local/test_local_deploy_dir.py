"""`SLUICE_DEPLOY_DIR`: the runtime's default templates come from another folder (a modified copy
of deploy/, as `make iam-proof` writes one), read again at each provisioning."""

from __future__ import annotations

from pathlib import Path

import aioboto3
import pytest

from sluice.local.errors import LocalRuntimeError
from sluice.local.provisioner import Limits
from sluice.local.runtime import DEPLOY_DIR_ENV, LocalRuntime, RuntimeOptions, default_templates
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[3]
PLATFORM = """\
Parameters:
  Stage:
    Type: String
    Default: dev
Resources:
  Param:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/sluice/${Stage}/toy-queue-name"
      Type: String
      Value: toy-from-copy
"""
SERVICE = """\
Parameters:
  QueueName:
    Type: AWS::SSM::Parameter::Value<String>
    Default: /sluice/dev/toy-queue-name
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Ref QueueName
      VisibilityTimeout: VISIBILITY
"""


def _toy_deploy(root: Path, visibility: int) -> Path:
    deploy = root / "deploy"
    (deploy / "services").mkdir(parents=True, exist_ok=True)
    (deploy / "platform.yaml").write_text(PLATFORM, "utf-8")
    text = SERVICE.replace("VISIBILITY", str(visibility))
    (deploy / "services" / "toy.yaml").write_text(text, "utf-8")
    return deploy


def test_default_templates_from_the_named_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = _toy_deploy(tmp_path, 30)
    monkeypatch.setenv(DEPLOY_DIR_ENV, str(deploy))
    assert default_templates(REPO) == [deploy / "platform.yaml", deploy / "services" / "toy.yaml"]
    monkeypatch.delenv(DEPLOY_DIR_ENV)
    assert default_templates(REPO)[0] == REPO / "deploy" / "platform.yaml"


def test_default_templates_folder_missing_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEPLOY_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(LocalRuntimeError, match="is not a folder"):
        default_templates(REPO)


async def test_runtime_provisions_and_reprovisions_from_the_copy(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a copy of the templates named by SLUICE_DEPLOY_DIR
    deploy = _toy_deploy(tmp_path / "copy", 30)
    monkeypatch.setenv(DEPLOY_DIR_ENV, str(deploy))
    options = RuntimeOptions(
        repo_root=REPO,
        state_dir=tmp_path / "state",
        port=free_port(),
        stage="dev",
        limits=Limits(max_concurrency=1),
        schedules_enabled=False,
        prewarm=False,
    )
    runtime = LocalRuntime(options)
    await runtime.start()
    try:
        session = aioboto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        async with session.client("sqs", endpoint_url=runtime.endpoint_url) as sqs:
            # WHEN the runtime comes up with no --template
            url = (await sqs.get_queue_url(QueueName="toy-from-copy"))["QueueUrl"]
            attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            # THEN it provisioned the copy's resources
            assert attrs["Attributes"]["VisibilityTimeout"] == "30"
            # AND after the copy changes, re-provisioning in place applies the change
            _toy_deploy(tmp_path / "copy", 45)
            await runtime.provision()
            attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            assert attrs["Attributes"]["VisibilityTimeout"] == "45"
    finally:
        await runtime.stop()
