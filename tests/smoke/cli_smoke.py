#!/usr/bin/env python3
"""Smoke test with real clients: the README's AWS CLI tour, run verbatim, then a short boto3 check;
authentication and per-key policies (`--auth`) and HTTPS (`--tls-cert`) with the AWS CLI and boto3.

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
    match = re.search(r"https?://127\.0\.0\.1:(\d+)", line)
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


def denied_message(user, action, table):
    """AWS's AccessDeniedException message for an action no statement allows."""
    return (f"User: arn:aws:iam::000000000000:user/{user} is not authorized to perform: dynamodb:{action} "
            f"on resource: arn:aws:dynamodb:us-east-1:000000000000:table/{table} "
            f"because no identity-based policy allows the dynamodb:{action} action")


def create_key(credentials, name, policy=None):
    """`haven keys create` (and `haven keys policy` when a policy is given): (key id, secret)."""
    created = subprocess.run([str(HAVEN), "keys", "create", "--name", name, "--credentials", credentials],
                             capture_output=True, text=True, check=True).stdout
    key = dict(line.split(" = ") for line in created.splitlines())
    if policy is not None:
        subprocess.run([str(HAVEN), "keys", "policy", key["aws_access_key_id"], "-", "--credentials", credentials],
                       input=json.dumps(policy), capture_output=True, text=True, check=True)
    return key["aws_access_key_id"], key["aws_secret_access_key"]


def run_auth(scratch):
    """`haven serve --auth`: the AWS CLI with a key from `haven keys create`, then a wrong secret; keys
    with policies refused what their policy does not allow, with the AWS CLI and boto3."""
    credentials = str(Path(scratch) / "haven-credentials")
    admin = create_key(credentials, "admin")
    table_arn = "arn:aws:dynamodb:us-east-1:000000000000:table/"
    reader = create_key(credentials, "reader", {"Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Describe*"], "Resource": table_arn + "Notes"}]})
    alice = create_key(credentials, "alice", {"Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                                       "dynamodb:BatchWriteItem", "dynamodb:Scan"],
         "Resource": table_arn + "Notes",
         "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["alice"]}}}]})
    process, port = start_haven("--auth", "--credentials", credentials)
    try:
        env = client_environment(scratch)
        endpoint = f"http://127.0.0.1:{port}"

        def cli(key, *args):
            env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])
            return subprocess.run(["aws", "dynamodb", "--endpoint-url", endpoint, *args], env=env,
                                  capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

        result = cli(admin, "list-tables")
        check("auth: list-tables with the right key", result.returncode == 0, result.stderr)
        result = cli((admin[0], "wrong-secret"), "list-tables")
        check("auth: a wrong secret is InvalidSignatureException",
              result.returncode != 0 and "InvalidSignatureException" in result.stderr, result.stderr)
        result = cli(admin, "create-table", "--table-name", "Notes", "--billing-mode", "PAY_PER_REQUEST",
                     "--attribute-definitions", "AttributeName=owner,AttributeType=S",
                     "AttributeName=id,AttributeType=S",
                     "--key-schema", "AttributeName=owner,KeyType=HASH", "AttributeName=id,KeyType=RANGE")
        check("auth: create-table with an unrestricted key", result.returncode == 0, result.stderr)
        item = '{"owner": {"S": "alice"}, "id": {"S": "1"}}'
        result = cli(reader, "put-item", "--table-name", "Notes", "--item", item)
        check("auth: the AWS CLI's put-item with a read-only key is AccessDeniedException with AWS's message",
              result.returncode != 0 and "AccessDeniedException" in result.stderr
              and denied_message("reader", "PutItem", "Notes") in result.stderr, result.stderr)
        result = cli(reader, "get-item", "--table-name", "Notes", "--key", item)
        check("auth: the AWS CLI's get-item with a read-only key", result.returncode == 0, result.stderr)
        result = cli(alice, "put-item", "--table-name", "Notes", "--item", item)
        check("auth: the AWS CLI's put-item in the LeadingKeys partition", result.returncode == 0, result.stderr)
        result = cli(alice, "put-item", "--table-name", "Notes", "--item", item.replace("alice", "bob"))
        check("auth: the AWS CLI's put-item in another partition is AccessDeniedException",
              result.returncode != 0 and denied_message("alice", "PutItem", "Notes") in result.stderr, result.stderr)
        run_boto3_policies(endpoint, reader, alice)
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_boto3_policies(endpoint, reader, alice):
    """The same policies with boto3: every path of a LeadingKeys key, a read-only key's writes."""
    import boto3
    from botocore.exceptions import ClientError

    def client(key):
        return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=key[0], aws_secret_access_key=key[1])

    def refused(name, call, user, action):
        try:
            call()
            check(f"auth: boto3 {name} is AccessDeniedException", False, "no error")
        except ClientError as error:
            got = (error.response["Error"]["Code"], error.response["Error"]["Message"])
            check(f"auth: boto3 {name} is AccessDeniedException",
                  got == ("AccessDeniedException", denied_message(user, action, "Notes")), got)

    mine = {"owner": {"S": "alice"}, "id": {"S": "2"}}
    theirs = {"owner": {"S": "bob"}, "id": {"S": "2"}}
    own = client(alice)
    own.put_item(TableName="Notes", Item=mine)
    got = own.get_item(TableName="Notes", Key=mine).get("Item")
    check("auth: boto3 get_item in the LeadingKeys partition", got == mine, got)
    count = own.query(TableName="Notes", KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
                      ExpressionAttributeValues={":o": {"S": "alice"}})["Count"]
    check("auth: boto3 query of the LeadingKeys partition", count == 2, count)
    refused("get_item of another partition", lambda: own.get_item(TableName="Notes", Key=theirs), "alice", "GetItem")
    refused("query of another partition", lambda: own.query(
        TableName="Notes", KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": "bob"}}), "alice", "Query")
    refused("batch_write_item touching another partition", lambda: own.batch_write_item(RequestItems={
        "Notes": [{"PutRequest": {"Item": mine}}, {"PutRequest": {"Item": theirs}}]}), "alice", "BatchWriteItem")
    refused("transact_write_items touching another partition", lambda: own.transact_write_items(TransactItems=[
        {"Put": {"TableName": "Notes", "Item": theirs}}]), "alice", "PutItem")
    refused("scan under a LeadingKeys condition", lambda: own.scan(TableName="Notes"), "alice", "Scan")
    read_only = client(reader)
    refused("delete_item with a read-only key", lambda: read_only.delete_item(TableName="Notes", Key=mine),
            "reader", "DeleteItem")
    refused("update_item with a read-only key", lambda: read_only.update_item(
        TableName="Notes", Key=mine, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
            "reader", "UpdateItem")


def make_certificate(scratch):
    """A test CA and a `localhost` certificate it signed (openssl); returns (ca, cert, key) paths."""
    d = Path(scratch)
    extensions = d / "server.ext"
    extensions.write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def openssl(*args):
        subprocess.run(["openssl", *args], capture_output=True, check=True, timeout=COMMAND_TIMEOUT)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2",
            "-subj", "/CN=Haven smoke CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", *ec, "-keyout", str(d / "key.pem"), "-out", str(d / "server.csr"), "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
            "-CAcreateserial", "-out", str(d / "cert.pem"), "-days", "2", "-extfile", str(extensions))
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


def run_tls(scratch):
    """`haven serve --tls-cert --tls-key`: the AWS CLI and boto3 over HTTPS, verifying a test CA."""
    ca, cert, key = make_certificate(scratch)
    process, port = start_haven("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        endpoint = f"https://localhost:{port}"
        env = client_environment(scratch)
        command = ["aws", "dynamodb", "--endpoint-url", endpoint, "list-tables"]
        result = subprocess.run([*command, "--ca-bundle", str(ca)], env=env, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT)
        check("tls: the AWS CLI with --ca-bundle lists tables over HTTPS", result.returncode == 0, result.stderr)
        result = subprocess.run([*command, "--cli-read-timeout", "5", "--cli-connect-timeout", "5"], env=env,
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        check("tls: the AWS CLI without the CA refuses the certificate",
              result.returncode != 0 and "SSL" in result.stderr, result.stderr)
        import boto3
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", verify=str(ca),
                              aws_access_key_id="AKIDSMOKETEST", aws_secret_access_key="smoke-test-secret")
        tables = client.list_tables()["TableNames"]
        check("tls: boto3 with verify=ca.pem lists tables over HTTPS", tables == [], tables)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main():
    with tempfile.TemporaryDirectory() as scratch:
        try:
            run_auth(scratch)
        except Exception as error:
            check("the --auth check runs to the end", False, repr(error))
    with tempfile.TemporaryDirectory() as scratch:
        try:
            run_tls(scratch)
        except Exception as error:
            check("the TLS check runs to the end", False, repr(error))
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
