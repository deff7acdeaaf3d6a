"""docs/iam-policy.json grants exactly the AWS actions the package calls: no more, no fewer.

The test reads the source (no AWS needed): every boto3 S3, EMR, EMR Serverless and KMS operation
called on a client (``client.put_object(...)``, ``get_paginator("list_objects_v2")``, managed
transfers), every ``S3Hook`` method the package calls (mapped to the client operations that method
makes, by reading the amazon provider's own source), and the actions S3 checks on the caller's
behalf (SSE-KMS data keys, ClickHouse's own S3 calls when it runs BACKUP with the connection's
keys). Each operation maps to its IAM action; the policy's actions must equal that set. So a new
``client.delete_object`` in any hook fails this test until the policy (and the README) grant it,
and a grant nobody uses fails it too.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "docs" / "iam-policy.json"
# The dev package (embedded stack, demo, sample data) only ever talks to the local moto server.
LOCAL_ONLY = ROOT / "plugins" / "backup_pipelines" / "dev"
SOURCES = [
    path
    for path in [*(ROOT / "plugins" / "backup_pipelines").rglob("*.py"), *(ROOT / "dags").rglob("*.py")]
    if LOCAL_ONLY not in path.parents
]

SERVICES = {"s3": "s3", "emr": "elasticmapreduce", "emr-serverless": "emr-serverless", "kms": "kms"}

# IAM actions whose names differ from the API operation (AWS Service Authorization Reference).
_S3_ACTIONS: dict[str, set[str]] = {
    "ListObjectsV2": {"s3:ListBucket"},
    "ListObjects": {"s3:ListBucket"},
    "HeadBucket": {"s3:ListBucket"},
    "HeadObject": {"s3:GetObject"},
    "GetObjectAttributes": {"s3:GetObject", "s3:GetObjectAttributes"},
    "CopyObject": {"s3:GetObject", "s3:PutObject"},  # read the source, write the destination
    "UploadPartCopy": {"s3:GetObject", "s3:PutObject"},
    "CreateMultipartUpload": {"s3:PutObject"},
    "UploadPart": {"s3:PutObject"},
    "CompleteMultipartUpload": {"s3:PutObject"},
    "DeleteObjects": {"s3:DeleteObject"},
    "ListObjectVersions": {"s3:ListBucketVersions"},
    "ListMultipartUploads": {"s3:ListBucketMultipartUploads"},
    "ListParts": {"s3:ListMultipartUploadParts"},
    "GetObjectLockConfiguration": {"s3:GetBucketObjectLockConfiguration"},
    "PutObjectLockConfiguration": {"s3:PutBucketObjectLockConfiguration"},
    "GetBucketLifecycleConfiguration": {"s3:GetLifecycleConfiguration"},
    "PutBucketLifecycleConfiguration": {"s3:PutLifecycleConfiguration"},
    "DeleteBucketLifecycle": {"s3:PutLifecycleConfiguration"},
}
# boto3's managed transfers and resource methods, by the client operations they make.
_TRANSFER_OPS = {
    "upload_file": {
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    },
    "upload_fileobj": {
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    },
    "download_file": {"HeadObject", "GetObject"},
    "download_fileobj": {"HeadObject", "GetObject"},
    "copy": {
        "HeadObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    },
}
# Inside S3Hook, boto3 resource objects: Object.load() is a HEAD, Object.get() a GET, and so on.
_RESOURCE_OPS = {"load": {"HeadObject"}, "get": {"GetObject"}, "put": {"PutObject"}}
# Actions S3 or ClickHouse perform with the caller's credentials, which no boto3 call names.
_IMPLIED_SSE_KMS = {"write": {"kms:GenerateDataKey"}, "read": {"kms:Decrypt"}}
# ClickHouse BACKUP/RESTORE ... S3(url, key, secret) (s3_credentials: connection) lists, reads,
# writes (multipart) and, when a backup fails, deletes what it wrote.
_CLICKHOUSE_BACKUP = {
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
}


@functools.cache
def _operations() -> dict[str, tuple[str, str]]:
    """snake_case client method -> (service, OperationName), from botocore's own service models."""
    import botocore
    import botocore.session

    session = botocore.session.get_session()
    found: dict[str, tuple[str, str]] = {}
    ambiguous: set[str] = set()
    for service in SERVICES:
        for op in session.get_service_model(service).operation_names:
            name = botocore.xform_name(op)
            if name in found:
                ambiguous.add(name)
            found[name] = (service, op)
    for name in ambiguous:
        found.pop(name)  # a call by one of these names must be resolved by hand (none is used today)
    return found


def _package_defined_names() -> set[str]:
    names = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


def _called(node: ast.AST) -> list[tuple[str, ast.Call]]:
    """(method name, call) for every ``<expr>.<method>(...)`` under ``node``."""
    return [
        (call.func.attr, call)
        for call in ast.walk(node)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
    ]


def _receiver(call: ast.Call) -> str:
    """``self.client`` for ``self.client.put_object(...)``."""
    assert isinstance(call.func, ast.Attribute)
    return ast.unparse(call.func.value)


def _literal_first_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


_CLIENT_RECEIVER = re.compile(r"client|conn\b|get_conn\(|\bs3\b|\bemr|serverless|\bkms\b")


def _client_ops(node: ast.AST, *, own_methods: set[str], resources: bool = False) -> set[tuple[str, str]]:
    """Client operations called under ``node``. A call of a name in ``own_methods`` is the code's own
    method (followed separately), unless the receiver is plainly a boto3 client (``self.client``,
    ``hook.get_conn()``, ``s3``): inside S3Hook ``self.head_object`` is a hook method, while
    ``self.get_conn().head_object`` is the API call. Client methods never take positional arguments,
    so ``hook.list_objects(bucket, prefix)`` is not the ListObjects API."""
    ops = _operations()
    found: set[tuple[str, str]] = set()
    for name, call in _called(node):
        receiver = _receiver(call)
        if name in ("get_paginator", "get_waiter") and (literal := _literal_first_arg(call)):
            if literal in ops:
                found.add(ops[literal])
        elif name in _TRANSFER_OPS and (call.args or call.keywords):  # not dict.copy()
            found |= {("s3", op) for op in _TRANSFER_OPS[name]}
        elif resources and name in _RESOURCE_OPS and not call.args:
            found |= {("s3", op) for op in _RESOURCE_OPS[name]}
        elif (
            name in ops
            and not call.args  # boto3 client methods take keyword arguments only
            and (name not in own_methods or (receiver != "self" and _CLIENT_RECEIVER.search(receiver)))
        ):
            found.add(ops[name])
    return found


@functools.cache
def _s3hook_method_ops() -> dict[str, set[tuple[str, str]]]:
    """For each public S3Hook method, the S3 operations it makes (through other self.* methods too)."""
    from airflow.providers.amazon.aws.hooks import s3

    tree = ast.parse(inspect.getsource(s3))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "S3Hook")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    direct = {
        name: _client_ops(node, own_methods=set(methods), resources=True) for name, node in methods.items()
    }
    calls = {
        name: {m for m, c in _called(node) if m in methods and m != name and _receiver(c) == "self"}
        for name, node in methods.items()
    }

    def closure(name: str, seen: frozenset[str]) -> set[tuple[str, str]]:
        result = set(direct[name])
        for callee in calls[name] - seen:
            result |= closure(callee, seen | {callee})
        return result

    return {name: closure(name, frozenset({name})) for name in methods if not name.startswith("_")}


def _provider_class_ops(module: str, name: str) -> set[tuple[str, str]]:
    """The S3 operations an amazon-provider trigger/sensor/operator makes through its hook."""
    import importlib

    source = inspect.getsource(getattr(importlib.import_module(module), name))
    tree = ast.parse(source)
    hook_methods = _s3hook_method_ops()
    found = _client_ops(tree, own_methods=set())
    for method, _ in _called(tree):
        found |= hook_methods.get(method, set())
    return found


def used_operations() -> dict[tuple[str, str], set[str]]:
    """Every AWS operation the package makes -> where (file:line) it is called."""
    package_names = _package_defined_names()
    hook_methods = _s3hook_method_ops()
    ops = _operations()
    where: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        rel = path.relative_to(ROOT)
        # Triggers, sensors and operators of the amazon provider the package uses.
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and re.match(r"airflow\.providers\.amazon\.aws\.(triggers|sensors|operators)\.", node.module)
            ):
                for alias in node.names:
                    for op in _provider_class_ops(node.module, alias.name):
                        where[op].add(f"{rel}:{node.lineno} ({alias.name})")
        for name, call in _called(tree):
            site = f"{rel}:{call.lineno}"
            if name in ops or name in ("get_paginator", "get_waiter") or name in _TRANSFER_OPS:
                for op in _client_ops(
                    ast.Module(body=[ast.Expr(call)], type_ignores=[]), own_methods=package_names
                ):
                    where[op].add(site)
            elif name in hook_methods and name not in package_names:
                for op in hook_methods[name]:
                    where[op].add(f"{site} (S3Hook.{name})")
    return dict(where)


def _iam_actions(service: str, op: str) -> set[str]:
    if service == "s3":
        return _S3_ACTIONS.get(op, {f"s3:{op}"})
    return {f"{SERVICES[service]}:{op}"}


def required_actions() -> dict[str, set[str]]:
    """IAM action -> why it is needed (call sites, or the implied reason)."""
    from backup_pipelines.core.config import Encryption

    needed: dict[str, set[str]] = defaultdict(set)
    for (service, op), sites in used_operations().items():
        for action in _iam_actions(service, op):
            needed[action] |= {f"{op} at {s}" for s in sites}
    if "SSE-KMS" in str(Encryption.model_fields["mode"].annotation):
        if "s3:PutObject" in needed:
            for action in _IMPLIED_SSE_KMS["write"]:
                needed[action].add("implied: PutObject/CopyObject/multipart with SSE-KMS")
        if "s3:GetObject" in needed:
            for action in _IMPLIED_SSE_KMS["read"]:
                needed[action].add("implied: GetObject of SSE-KMS objects, multipart completion")
    if "s3:PutBucketReplication" in needed:  # S3 replicates as the role the rules name
        needed["iam:PassRole"].add("implied: PutBucketReplication hands S3 the replication role")
    sql = " ".join(p.read_text() for p in (ROOT / "include" / "sql").rglob("*.sql"))
    if re.search(r"\bBACKUP\b.*\bTO\s+S3\s*\(", sql, flags=re.S | re.I):
        for action in _CLICKHOUSE_BACKUP:
            needed[action].add("implied: ClickHouse BACKUP/RESTORE ... S3(url, key, secret) with these keys")
    return dict(needed)


def _policy_actions() -> dict[str, list[dict[str, object]]]:
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    by_action: dict[str, list[dict[str, object]]] = defaultdict(list)
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", "the policy only allows; deny is for SCPs"
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert "*" not in action, f"wildcard action {action} is not least privilege"
            by_action[action].append(statement)
    return by_action


def test_scan_finds_the_calls_the_package_is_known_to_make() -> None:
    """Guards the scanner itself: if these vanish, the scan broke, not the code."""
    used = used_operations()
    assert ("s3", "PutObject") in used
    assert ("s3", "ListObjectsV2") in used  # get_paginator("list_objects_v2") and S3Hook.list_keys
    assert ("s3", "HeadObject") in used  # S3Hook.check_for_key
    assert _s3hook_method_ops()["check_for_key"] == {("s3", "HeadObject")}
    assert ("s3", "GetObject") in _s3hook_method_ops()["read_key"]


def test_policy_grants_exactly_the_actions_the_code_calls() -> None:
    needed = required_actions()
    granted = _policy_actions()
    missing = {a: sorted(needed[a])[:3] for a in sorted(set(needed) - set(granted))}
    unused = sorted(set(granted) - set(needed))
    assert not missing, f"docs/iam-policy.json lacks actions the code calls: {missing}"
    assert not unused, f"docs/iam-policy.json grants actions no code calls (not least privilege): {unused}"


_BUCKET_LEVEL = {
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetLifecycleConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:GetBucketObjectLockConfiguration",
    "s3:CreateBucket",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:GetBucketReplication",
    "s3:PutBucketReplication",
}


def test_s3_actions_are_scoped_to_the_configured_buckets() -> None:
    from backup_pipelines.core.config import load_config

    cfg = load_config(ROOT / "include" / "config" / "backup.yaml")
    buckets = {cfg.storage.backup_bucket, cfg.storage.archive_bucket}
    buckets |= {job.source[5:].split("/", 1)[0] for job in cfg.emr_archive.jobs}
    if cfg.storage.replica is not None:  # the DR region's buckets
        buckets |= {cfg.storage.replica.backup_bucket, cfg.storage.replica.archive_bucket}
    allowed_buckets = {f"arn:aws:s3:::{b}" for b in buckets}
    for action, statements in _policy_actions().items():
        for statement in statements:
            resources = statement["Resource"]
            resources = [resources] if isinstance(resources, str) else resources
            assert isinstance(resources, list)
            assert "*" not in resources, f"{action} on every resource"
            if not action.startswith("s3:"):
                continue
            for resource in resources:
                assert isinstance(resource, str)
                if action in _BUCKET_LEVEL:
                    assert resource in allowed_buckets, f"{action} must name a bucket ARN, not {resource}"
                else:
                    bucket, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
                    assert f"arn:aws:s3:::{bucket}" in allowed_buckets and key, (
                        f"{action} must name objects in a configured bucket, not {resource}"
                    )


def test_docs_list_the_same_actions_as_the_policy() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Deploying\b.*?(?=^## |\Z)", readme, flags=re.M | re.S)
    assert section, "README.md has no '## Deploying' section"
    doc = section.group(0)
    documented = set(re.findall(r"`((?:s3|kms|iam|elasticmapreduce|emr-serverless):[A-Za-z]+)`", doc))
    assert documented == set(_policy_actions()), (
        f"README Deploying section and docs/iam-policy.json disagree: "
        f"only in docs {sorted(documented - set(_policy_actions()))}, "
        f"only in policy {sorted(set(_policy_actions()) - documented)}"
    )


def test_the_replication_role_reads_the_sources_and_writes_only_the_dr_buckets() -> None:
    """docs/iam-replication-role.json: what S3 Replication (``mode: s3_replication``) runs as."""
    from backup_pipelines.core.config import load_config
    from backup_pipelines.replica.rules import replication_rules

    cfg = load_config(ROOT / "include" / "config" / "backup.yaml")
    assert cfg.storage.replica is not None
    role = json.loads((ROOT / "docs" / "iam-replication-role.json").read_text())
    grants: dict[str, set[str]] = defaultdict(set)
    for statement in role["Statement"]:
        for action in statement["Action"]:
            grants[action].update(statement["Resource"])
    sources = {cfg.storage.backup_bucket, cfg.storage.archive_bucket}
    dr = {cfg.storage.replica.backup_bucket, cfg.storage.replica.archive_bucket}
    assert grants["s3:GetReplicationConfiguration"] == {f"arn:aws:s3:::{b}" for b in sources}
    assert grants["s3:GetObjectVersionForReplication"] == {f"arn:aws:s3:::{b}/*" for b in sources}
    assert grants["s3:ReplicateObject"] == {f"arn:aws:s3:::{b}/*" for b in dr}
    assert "s3:ReplicateDelete" not in grants, "retention deletes in each region itself, never by replication"
    raw = yaml.safe_load((ROOT / "include" / "config" / "backup.yaml").read_text())
    raw["storage"]["replica"].update(
        {"mode": "s3_replication", "replication_role_arn": "arn:aws:iam::111122223333:role/r"}
    )
    from backup_pipelines.core.config import BackupConfig

    rules = replication_rules(BackupConfig.model_validate(raw))
    destinations = {r["Destination"]["Bucket"] for rs in rules.values() for r in rs}
    assert destinations == {f"arn:aws:s3:::{b}" for b in dr}
    assert set(rules) == sources
    trust = json.loads((ROOT / "docs" / "iam-replication-role-trust.json").read_text())
    assert trust["Statement"][0]["Principal"] == {"Service": "s3.amazonaws.com"}
