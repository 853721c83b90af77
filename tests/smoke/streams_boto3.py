#!/usr/bin/env python3
"""DynamoDB Streams and TTL expiry with boto3 (its `dynamodbstreams` client on Haven's endpoint):
records of puts, updates and deletes with both images, and with each other view type exactly its
images (the log keeps whole only the images some reader needs), ListStreams and DescribeStream, iterators by
sequence number, errors with their AWS codes, and a TTL deletion's record with the service identity.

Starts target/debug/haven (in memory, on a free port, TTL worker every 200 ms) through cli_smoke's
helpers; prints `streams: N passed, M failed` and exits non-zero on any failure.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_smoke  # noqa: E402
from cli_smoke import check  # noqa: E402

TABLE = "streamed"


def clients(port):
    import boto3

    options = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                   aws_access_key_id="AKIDSTREAMS", aws_secret_access_key="streams-secret")
    return boto3.client("dynamodb", **options), boto3.client("dynamodbstreams", **options)


def records_of(streams, arn):
    """Every record of the stream's shards, oldest shard first."""
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    records = []
    for shard in shards:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def error_code(call):
    try:
        call()
    except Exception as error:  # botocore's ClientError
        return getattr(error, "response", {}).get("Error", {}).get("Code")
    return None


def run(port):
    dynamodb, streams = clients(port)
    created = dynamodb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = created["TableDescription"]["LatestStreamArn"]
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    dynamodb.update_item(TableName=TABLE, Key={"pk": {"S": "a"}}, UpdateExpression="SET v = :v",
                         ExpressionAttributeValues={":v": {"N": "2"}})
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "a"}})

    listed = streams.list_streams(TableName=TABLE)["Streams"]
    check("streams: ListStreams names the table's stream", [s["StreamArn"] for s in listed] == [arn], listed)
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    check("streams: DescribeStream is ENABLED with the view type",
          (description["StreamStatus"], description["StreamViewType"]) == ("ENABLED", "NEW_AND_OLD_IMAGES"),
          description)
    records = records_of(streams, arn)
    events = [(r["eventName"], r["dynamodb"].get("OldImage", {}).get("v"), r["dynamodb"].get("NewImage", {}).get("v"))
              for r in records]
    expected = [("INSERT", None, {"N": "1"}), ("MODIFY", {"N": "1"}, {"N": "2"}), ("REMOVE", {"N": "2"}, None)]
    check("streams: one record per change, in order, with both images", events == expected, events)

    shard = description["Shards"][0]["ShardId"]
    second = records[1]["dynamodb"]["SequenceNumber"]
    at = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                    SequenceNumber=second)["ShardIterator"]
    names = [r["eventName"] for r in streams.get_records(ShardIterator=at)["Records"]]
    check("streams: AT_SEQUENCE_NUMBER starts at that record", names == ["MODIFY", "REMOVE"], names)

    missing = arn + "x"
    check("streams: an unknown stream is ResourceNotFoundException",
          error_code(lambda: streams.describe_stream(StreamArn=missing)) == "ResourceNotFoundException")
    check("streams: a made-up iterator is ValidationException",
          error_code(lambda: streams.get_records(ShardIterator=arn + "|1|AAAA")) == "ValidationException")

    dynamodb.update_time_to_live(TableName=TABLE,
                                 TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "old"}, "exp": {"N": str(int(time.time()) - 60)}})
    deadline = time.time() + 10
    while "Item" in dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "old"}}, ConsistentRead=True):
        if time.time() > deadline:
            break
        time.sleep(0.1)
    removal = records_of(streams, arn)[-1]
    check("ttl: the expired item was deleted, its record names the TTL service",
          removal["eventName"] == "REMOVE"
          and removal.get("userIdentity") == {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
          removal)


def view_types(dynamodb, streams):
    """Each view type's records of an insert, a change and a removal: Keys always, and exactly the
    images the view type shows."""
    for view, old, new in [("KEYS_ONLY", False, False), ("NEW_IMAGE", False, True), ("OLD_IMAGE", True, False)]:
        table = view.lower()
        arn = dynamodb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view})["TableDescription"]["LatestStreamArn"]
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "2"}})
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": "a"}})
        events = [(r["eventName"], r["dynamodb"]["Keys"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage"))
                  for r in records_of(streams, arn)]
        image = lambda shown, v: {"pk": {"S": "a"}, "v": {"N": v}} if shown else None
        keys = {"pk": {"S": "a"}}
        expected = [("INSERT", keys, None, image(new, "1")), ("MODIFY", keys, image(old, "1"), image(new, "2")),
                    ("REMOVE", keys, image(old, "2"), None)]
        check(f"streams: the {view} stream shows exactly its images", events == expected, events)


def main():
    process, port = cli_smoke.start_haven("--ttl-interval-ms", "200")
    try:
        try:
            run(port)
            view_types(*clients(port))
        except Exception as error:  # a crash in the harness is a failure, not a pass
            check("the streams check runs to the end", False, repr(error))
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"streams: {cli_smoke.passed} passed, {cli_smoke.failed} failed")
    return 1 if cli_smoke.failed else 0


if __name__ == "__main__":
    sys.exit(main())
