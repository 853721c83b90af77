"""A sample suite run against the installed wheel (scripts/wheel-test.sh): what a project's tests
look like with the fixtures."""

import boto3
import pytest
from botocore.exceptions import ClientError

import haven_dynamodb


def make_table(client, name):
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})


def test_the_binary_is_inside_the_package():
    assert haven_dynamodb.binary_path().is_file()
    assert "site-packages" in str(haven_dynamodb.binary_path())


def test_session_server_keeps_tables_across_tests_part_1(dynamodb):
    make_table(dynamodb, "Session")
    dynamodb.put_item(TableName="Session", Item={"pk": {"S": "a"}, "n": {"N": "1"}})


def test_session_server_keeps_tables_across_tests_part_2(dynamodb):
    item = dynamodb.get_item(TableName="Session", Key={"pk": {"S": "a"}}, ConsistentRead=True)
    assert item["Item"]["n"] == {"N": "1"}


def test_a_fresh_server_per_test_has_no_tables(dynamodb_per_test):
    assert dynamodb_per_test.list_tables()["TableNames"] == []
    make_table(dynamodb_per_test, "Fresh")
    with pytest.raises(ClientError) as error:
        dynamodb_per_test.put_item(TableName="Fresh", Item={"pk": {"N": "1"}})
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_servers_per_test_are_apart(haven_server_per_test, haven_server):
    assert haven_server_per_test.endpoint != haven_server.endpoint


def test_resource_api_works_too(haven_server_per_test):
    resource = boto3.resource("dynamodb", endpoint_url=haven_server_per_test.endpoint,
                              region_name="us-east-1", aws_access_key_id="x",
                              aws_secret_access_key="x")
    make_table(resource.meta.client, "Res")
    table = resource.Table("Res")
    table.put_item(Item={"pk": "k", "list": [1, 2]})
    assert table.get_item(Key={"pk": "k"})["Item"]["list"] == [1, 2]
