#!/usr/bin/env python3
"""Smoke test with real clients: the README's AWS CLI tour, run verbatim, then a short boto3 check.

Starts target/debug/haven (in memory, on a free port), takes the shell commands from the ```sh block
that follows the `<!-- tour -->` marker in README.md, points them at that port instead of 8000, runs
each with dummy credentials and checks its JSON output. Prints `smoke: N passed, M failed` and exits
non-zero on any failure. Needs the AWS CLI and boto3 (scripts/test.sh installs them).
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
HAVEN = Path(os.environ.get("HAVEN_BIN", TARGET / "debug" / "haven"))
TOUR_PORT = "8000"
COMMAND_TIMEOUT = 60

passed = 0
failed = 0


def check(name, condition, detail=""):
    """Records one check; a failure prints what was seen."""
    global passed, failed
    if condition:
        passed += 1
        print(f"  ok    {name}")
    else:
        failed += 1
        print(f"  FAIL  {name}" + (f"\n        {detail}" if detail else ""))
    return condition


def tour_commands(readme):
    """The commands of the fenced block after the `<!-- tour -->` marker, continuation lines joined."""
    lines = readme.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "<!-- tour -->")
    except StopIteration:
        raise SystemExit("README.md has no <!-- tour --> marker")
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].strip())
    if not lines[fence].startswith("```"):
        raise SystemExit("the <!-- tour --> marker is not followed by a fenced block")
    commands, current = [], ""
    for line in lines[fence + 1 :]:
        if line.startswith("```"):
            break
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
        else:
            commands.append(current + stripped)
            current = ""
    return commands


def start_haven(*extra):
    """Starts Haven in memory on a free port; returns the process and the port."""
    if not HAVEN.exists():
        raise SystemExit(f"{HAVEN} not found: run `cargo build --bin haven` first")
    process = subprocess.Popen(
        [str(HAVEN), "serve", "--in-memory", "--listen", "127.0.0.1:0", "--log-level", "warn", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"unexpected first line from haven: {line!r}")
    return process, match.group(1)


def client_environment(scratch):
    """Dummy credentials and region, and no user configuration leaking in."""
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="AKIDSMOKETEST",
        AWS_SECRET_ACCESS_KEY="smoke-test-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(Path(scratch) / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(Path(scratch) / "credentials"),
        AWS_PAGER="",
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def option(argv, name):
    """The value after `name` in an argument list, or None."""
    return argv[argv.index(name) + 1] if name in argv else None


def normalized(item):
    """Sorts set members, which DynamoDB returns in no promised order."""
    def value(v):
        (kind, payload), = v.items()
        if kind in ("SS", "NS", "BS"):
            return {kind: sorted(payload)}
        if kind == "M":
            return {"M": normalized(payload)}
        if kind == "L":
            return {"L": [value(x) for x in payload]}
        return v
    return {k: value(v) for k, v in item.items()}


def check_tour_output(argv, output, state):
    """Checks one tour command's JSON output against what the command asked for."""
    subcommand = next(a for a in argv[2:] if not a.startswith("-") and not a.startswith("http"))
    table = option(argv, "--table-name")
    if subcommand == "create-table":
        description = output.get("TableDescription", {})
        check("create-table returns the table", description.get("TableName") == table, output)
        check("create-table: ACTIVE", description.get("TableStatus") == "ACTIVE", output)
        keys = [f"AttributeName={k['AttributeName']},KeyType={k['KeyType']}" for k in description.get("KeySchema", [])]
        wanted = argv[argv.index("--key-schema") + 1 : argv.index("--key-schema") + 1 + len(keys)]
        check("create-table: the key schema asked for", keys and keys == wanted, f"{keys} vs {wanted}")
        state["table"] = table
    elif subcommand == "list-tables":
        check("list-tables names the table", state.get("table") in output.get("TableNames", []), output)
    elif subcommand == "put-item":
        state["item"] = json.loads(option(argv, "--item"))
        check("put-item returns no attributes", "Attributes" not in output, output)
    elif subcommand == "get-item":
        got = output.get("Item")
        check("get-item returns the item put", got is not None and normalized(got) == normalized(state.get("item", {})),
              f"got {got}, put {state.get('item')}")
    elif subcommand == "update-item":
        attributes = output.get("Attributes", {})
        expected = dict(state.get("item", {}))
        values = json.loads(option(argv, "--expression-attribute-values") or "{}")
        for name, placeholder in re.findall(r"(\w+)\s*=\s*(:\w+)", option(argv, "--update-expression") or ""):
            expected[name] = values[placeholder]
        check("update-item returns the updated item (ALL_NEW)", normalized(attributes) == normalized(expected),
              f"got {attributes}, expected {expected}")
        state["item"] = expected
    elif subcommand == "describe-table":
        table_description = output.get("Table", {})
        check("describe-table: the table, ACTIVE",
              table_description.get("TableName") == table and table_description.get("TableStatus") == "ACTIVE", output)
        check("describe-table: ItemCount 1", table_description.get("ItemCount") == 1, table_description.get("ItemCount"))
    elif subcommand == "delete-item":
        got = output.get("Attributes")
        if option(argv, "--return-values") == "ALL_OLD":
            check("delete-item returns the deleted item (ALL_OLD)",
                  got is not None and normalized(got) == normalized(state.get("item", {})), output)
        state["deleted"] = json.loads(option(argv, "--key"))
    elif subcommand == "delete-table":
        description = output.get("TableDescription", {})
        check("delete-table returns the table", description.get("TableName") == table, output)
        state["table_deleted"] = table
    else:
        check(f"{subcommand}: known to the smoke test", False, "add a check for it in cli_smoke.py")


def run_tour(port, env):
    print("README tour (AWS CLI):")
    commands = tour_commands((ROOT / "README.md").read_text())
    check("the tour has commands", len(commands) >= 5, commands)
    state = {}
    for command in commands:
        command = command.replace(f"127.0.0.1:{TOUR_PORT}", f"127.0.0.1:{port}")
        argv = shlex.split(command)
        name = next((a for a in argv[2:] if not a.startswith("-") and not a.startswith("http")), "?")
        if not check(f"{name}: an `aws dynamodb` command pointed at Haven",
                     argv[:2] == ["aws", "dynamodb"] and f"http://127.0.0.1:{port}" in argv, command):
            continue
        result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        if not check(f"{name} exits 0", result.returncode == 0, result.stderr.strip()):
            continue
        try:
            output = json.loads(result.stdout) if result.stdout.strip() else {}
        except json.JSONDecodeError:
            check(f"{name} prints JSON", False, result.stdout)
            continue
        check_tour_output(argv, output, state)

    # After the tour: what it deleted is gone.
    base = ["aws", "dynamodb", "--endpoint-url", f"http://127.0.0.1:{port}"]
    if "table_deleted" in state:
        result = subprocess.run(base + ["describe-table", "--table-name", state["table_deleted"]],
                                env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        check("the deleted table is gone (ResourceNotFoundException)",
              result.returncode != 0 and "ResourceNotFoundException" in result.stderr, result.stderr.strip())


def run_boto3(port):
    print("boto3:")
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="AKIDSMOKETEST",
        aws_secret_access_key="smoke-test-secret",
    )
    table = "boto3_smoke"
    created = client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "n", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    check("create_table", created["TableDescription"]["TableStatus"] == "ACTIVE", created)
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    check("the table_exists waiter returns", True)
    item = {
        "id": {"S": "ada"},
        "n": {"N": "1.50"},
        "bin": {"B": b"\x00\xff"},
        "doc": {"M": {"list": {"L": [{"BOOL": True}, {"NULL": True}, {"NS": ["3", "1"]}]}}},
    }
    client.put_item(TableName=table, Item=item)
    got = client.get_item(TableName=table, Key={"id": {"S": "ada"}, "n": {"N": "1.5"}}, ConsistentRead=True).get("Item")
    expected = dict(item, n={"N": "1.5"})
    check("put_item then get_item returns the item", got is not None and normalized(got) == normalized(expected),
          f"got {got}")
    deleted = client.delete_item(TableName=table, Key={"id": {"S": "ada"}, "n": {"N": "1.5"}}, ReturnValues="ALL_OLD")
    check("delete_item returns the old item", normalized(deleted.get("Attributes", {})) == normalized(expected), deleted)
    got = client.get_item(TableName=table, Key={"id": {"S": "ada"}, "n": {"N": "1.5"}})
    check("the deleted item is gone", "Item" not in got, got)
    try:
        client.get_item(TableName="no_such_table", Key={"id": {"S": "x"}})
        check("a missing table raises ResourceNotFoundException", False, "no error")
    except ClientError as error:
        check("a missing table raises ResourceNotFoundException",
              error.response["Error"]["Code"] == "ResourceNotFoundException", error.response["Error"])
    client.delete_table(TableName=table)
    check("delete_table", table not in client.list_tables()["TableNames"])


def run_auth(scratch):
    """`haven serve --auth`: the AWS CLI with a key from `haven keys create`, then a wrong secret."""
    credentials = str(Path(scratch) / "haven-credentials")
    created = subprocess.run([str(HAVEN), "keys", "create", "--credentials", credentials],
                             capture_output=True, text=True, check=True).stdout
    key = dict(line.split(" = ") for line in created.splitlines())
    process, port = start_haven("--auth", "--credentials", credentials)
    try:
        env = client_environment(scratch)
        env.update(AWS_ACCESS_KEY_ID=key["aws_access_key_id"],
                   AWS_SECRET_ACCESS_KEY=key["aws_secret_access_key"])
        command = ["aws", "dynamodb", "--endpoint-url", f"http://127.0.0.1:{port}", "list-tables"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        check("auth: list-tables with the right key", result.returncode == 0, result.stderr)
        env.update(AWS_SECRET_ACCESS_KEY="wrong-secret")
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        check("auth: a wrong secret is InvalidSignatureException",
              result.returncode != 0 and "InvalidSignatureException" in result.stderr, result.stderr)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main():
    with tempfile.TemporaryDirectory() as scratch:
        try:
            run_auth(scratch)
        except Exception as error:
            check("the --auth check runs to the end", False, repr(error))
    process, port = start_haven()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                run_tour(port, client_environment(scratch))
            except Exception as error:  # a crash in the harness is a failure, not a pass
                check("the CLI tour runs to the end", False, repr(error))
            try:
                run_boto3(port)
            except Exception as error:
                check("the boto3 check runs to the end", False, repr(error))
        check("haven is still running", process.poll() is None, f"exit code {process.poll()}")
    finally:
        process.terminate()
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    check("haven stops cleanly on SIGTERM", code == 0, f"exit code {code}")
    print(f"smoke: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
