#!/usr/bin/env python3
"""The two halves of scripts/startup-order.sh.

    startup-order.py drive PORT first|items     # waits for the first answered ListTables, or
                                                # runs CreateTable and the item operations
    startup-order.py list BINARY OUTPUT DUMP... # BINARY's functions in the callgrind dumps, in order
"""
import json, re, socket, sys, time


def call(port, operation, body):
    data = json.dumps(body).encode()
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n"
        f"X-Amz-Target: DynamoDB_20120810.{operation}\r\nX-Amz-Date: {now}\r\nAuthorization: "
        f"AWS4-HMAC-SHA256 Credential=x/{now[:8]}/us-east-1/dynamodb/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature=x\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head + data)
        return s.recv(16).startswith(b"HTTP/1.1 200")


def first_answer(port):
    deadline = time.monotonic() + 120
    while True:
        try:
            if call(port, "ListTables", {}):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit("the server did not answer")
        time.sleep(0.05)


def items(port):
    def must(operation, body):
        if not call(port, operation, body):
            sys.exit(f"{operation} failed")
    table, key = "order", {"pk": {"S": "a"}, "sk": {"N": "1"}}
    must("CreateTable", {"TableName": table, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "N"}]})
    must("DescribeTable", {"TableName": table})
    must("PutItem", {"TableName": table, "Item": dict(key, v={"S": "x" * 100}, n={"N": "1"})})
    must("GetItem", {"TableName": table, "Key": key})
    must("UpdateItem", {"TableName": table, "Key": key, "UpdateExpression": "SET n = n + :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}}})
    must("Query", {"TableName": table, "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "a"}}})
    must("Scan", {"TableName": table})
    puts = [{"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": str(i)}}}} for i in range(25)]
    must("BatchWriteItem", {"RequestItems": {table: puts}})
    must("BatchGetItem", {"RequestItems": {table: {"Keys": [key, {"pk": {"S": "b"}, "sk": {"N": "3"}}]}}})
    must("DeleteItem", {"TableName": table, "Key": key})


def functions(path, binary):
    """Mangled names of the functions of `binary` that ran, in the callgrind file's order."""
    objects, names, found, current = {}, {}, [], None

    def name(table, field):  # "(id) name" defines a compressed name, "(id)" refers to it
        match = re.match(r"\((\d+)\)(?: (.*))?", field)
        if match.group(2) is not None:
            table[match.group(1)] = match.group(2)
        return table[match.group(1)]

    for line in open(path):
        key, _, field = line.rstrip("\n").partition("=")
        if key == "ob":
            current = name(objects, field)
        elif key == "cob":
            name(objects, field)
        elif key == "cfn":
            name(names, field)
        elif key == "fn":
            function = name(names, field)
            if current == binary:
                found.append(function.split("'")[0])  # callgrind marks recursion as name'2
    return found


def list_functions(binary, output, *dumps):
    order = {}  # insertion-ordered: the first dump's functions, then the ones each next one adds
    for dump in dumps:
        order.update(dict.fromkeys(functions(dump, binary)))
    with open(output, "w") as out:
        out.write("".join(f"{f}\n" for f in order))
    print(f"{len(order)} functions in {output}")


if sys.argv[1] == "drive":
    port = int(sys.argv[2])
    first_answer(port) if sys.argv[3] == "first" else items(port)
else:
    list_functions(*sys.argv[2:])
