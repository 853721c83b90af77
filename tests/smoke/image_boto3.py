#!/usr/bin/env python3
"""boto3 against Haven's container image (or its entry point run without the image), as a project
that ran amazon/dynamodb-local would use it; driven by scripts/image-test.sh.

  image_boto3.py use ENDPOINT        creates table Music, writes an item and reads it back
  image_boto3.py persisted ENDPOINT  the item `use` wrote is still there (after a restart)
  image_boto3.py waiters ENDPOINT    -delayTransientStatuses: CREATING, UPDATING and DELETING
                                     seen by boto3's waiters, and ResourceInUseException meanwhile

Exits non-zero with the failed check's message.
"""

import sys

import boto3
from botocore.exceptions import ClientError

KEY = {"Artist": {"S": "No One You Know"}}
# boto3's waiters poll every 20 s by default; the configured window is about a second.
FAST = {"Delay": 1, "MaxAttempts": 30}


def client(endpoint):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-west-2",
                        aws_access_key_id="DUMMYIDEXAMPLE", aws_secret_access_key="DUMMYEXAMPLEKEY")


def create(dynamodb, table):
    return dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Artist", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Artist", "AttributeType": "S"}],
    )["TableDescription"]


def status(dynamodb, table):
    return dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]


def expect(what, actual, wanted):
    if actual != wanted:
        sys.exit(f"image_boto3: {what}: got {actual!r}, wanted {wanted!r}")


def use(dynamodb):
    create(dynamodb, "Music")
    dynamodb.put_item(TableName="Music", Item={**KEY, "SongTitle": {"S": "Call Me Today"}})
    persisted(dynamodb)


def persisted(dynamodb):
    expect("ListTables", dynamodb.list_tables()["TableNames"], ["Music"])
    item = dynamodb.get_item(TableName="Music", Key=KEY, ConsistentRead=True).get("Item")
    expect("the item", item, {**KEY, "SongTitle": {"S": "Call Me Today"}})


def refused(call, message):
    try:
        call()
    except ClientError as error:
        expect("the refusal", (error.response["Error"]["Code"], error.response["Error"]["Message"]),
               ("ResourceInUseException", message))
    else:
        sys.exit(f"image_boto3: expected ResourceInUseException: {message}")


def waiters(dynamodb):
    in_use = "Attempt to change a resource which is still in use: Table is being {}: Slow"
    expect("CreateTable's status", create(dynamodb, "Slow")["TableStatus"], "CREATING")
    refused(lambda: dynamodb.delete_table(TableName="Slow"), in_use.format("created"))
    dynamodb.get_waiter("table_exists").wait(TableName="Slow", WaiterConfig=FAST)
    expect("after the waiter", status(dynamodb, "Slow"), "ACTIVE")
    dynamodb.update_table(TableName="Slow", BillingMode="PROVISIONED",
                          ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    expect("after UpdateTable", status(dynamodb, "Slow"), "UPDATING")
    refused(lambda: dynamodb.update_table(TableName="Slow", BillingMode="PAY_PER_REQUEST"),
            in_use.format("updated"))
    dynamodb.put_item(TableName="Slow", Item=KEY)
    dynamodb.get_waiter("table_exists").wait(TableName="Slow", WaiterConfig=FAST)
    expect("after the waiter", status(dynamodb, "Slow"), "ACTIVE")
    deleted = dynamodb.delete_table(TableName="Slow")["TableDescription"]["TableStatus"]
    expect("DeleteTable's status", deleted, "DELETING")
    expect("while deleting", status(dynamodb, "Slow"), "DELETING")
    dynamodb.get_waiter("table_not_exists").wait(TableName="Slow", WaiterConfig=FAST)
    expect("ListTables", dynamodb.list_tables()["TableNames"], [])


def main():
    mode, endpoint = sys.argv[1], sys.argv[2]
    {"use": use, "persisted": persisted, "waiters": waiters}[mode](client(endpoint))
    print(f"image_boto3: {mode} passed")


if __name__ == "__main__":
    main()
