//! Authorization end to end: keys with IAM-style policies (docs/security.md) are refused what their
//! policy does not allow, with DynamoDB's AccessDeniedException and AWS's exact message, on every
//! path: single items, batches, transactions, index queries, control-plane operations and
//! dynamodb:LeadingKeys, and PartiQL statements (their PartiQL actions). A policy change and a
//! revocation are in force from the next request.

mod common;

use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue as Av, ConditionCheck, Delete, Get, KeysAndAttributes, Put, PutRequest,
    TransactGetItem, TransactWriteItem, WriteRequest,
};
use common::{HavenServer, create_key, error_of, haven_keys, sdk_client_with_key};

const ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000";

/// A server with an unrestricted `admin` key, and a way to add keys with policies.
struct Setup {
    dir: tempfile::TempDir,
    file: PathBuf,
    server: HavenServer,
    admin: Client,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        let (id, secret) = create_key(&file, "admin");
        let server = HavenServer::start_with_auth(&file);
        let admin = sdk_client_with_key(&server.endpoint(), &id, &secret);
        Setup {
            dir,
            file,
            server,
            admin,
        }
    }

    /// A new key named `name` with `policy`, and a client signing with it.
    fn key_with_policy(&self, name: &str, policy: &str) -> (String, Client) {
        let (id, secret) = create_key(&self.file, name);
        set_policy(&self.file, self.dir.path(), &id, policy);
        let client = sdk_client_with_key(&self.server.endpoint(), &id, &secret);
        (id, client)
    }
}

fn set_policy(file: &Path, dir: &Path, id: &str, policy: &str) {
    let policy_file = dir.join(format!("{id}.json"));
    std::fs::write(&policy_file, policy).unwrap();
    haven_keys(file, &["policy", id, policy_file.to_str().unwrap()]);
}

fn s(text: &str) -> Av {
    Av::S(text.into())
}

/// AWS's message for an action no statement allows.
fn not_allowed(user: &str, action: &str, resource: &str) -> (String, String) {
    (
        "AccessDeniedException".into(),
        format!(
            "User: arn:aws:iam::000000000000:user/{user} is not authorized to perform: dynamodb:{action} on resource: {resource} because no identity-based policy allows the dynamodb:{action} action"
        ),
    )
}

fn table_arn(table: &str) -> String {
    format!("{ARN}:table/{table}")
}

fn put(table: &str, pk: &str) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .item("pk", s(pk))
        .build()
        .unwrap();
    TransactWriteItem::builder().put(put).build()
}

fn put_request(pk: &str) -> WriteRequest {
    let put = PutRequest::builder().item("pk", s(pk)).build().unwrap();
    WriteRequest::builder().put_request(put).build()
}

#[tokio::test]
async fn a_read_only_key_cannot_write() {
    let setup = Setup::new();
    common::create_table(&setup.admin, "Alpha", &[("pk", "S")]).await;
    setup
        .admin
        .put_item()
        .table_name("Alpha")
        .item("pk", s("kept"))
        .send()
        .await
        .unwrap();
    let (_, reader) = setup.key_with_policy(
        "reader",
        &format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:Describe*"],
                "Resource": "{}"}}]}}"#,
            table_arn("Alpha")
        ),
    );
    let got = reader
        .get_item()
        .table_name("Alpha")
        .key("pk", s("kept"))
        .send()
        .await
        .unwrap();
    assert!(got.item().is_some());
    reader
        .describe_table()
        .table_name("Alpha")
        .send()
        .await
        .unwrap();

    let denied = |action| not_allowed("reader", action, &table_arn("Alpha"));
    let put_item = reader.put_item().table_name("Alpha").item("pk", s("new"));
    assert_eq!(error_of(put_item.send().await), denied("PutItem"));
    let update = reader
        .update_item()
        .table_name("Alpha")
        .key("pk", s("kept"))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", s("changed"));
    assert_eq!(error_of(update.send().await), denied("UpdateItem"));
    let delete = reader
        .delete_item()
        .table_name("Alpha")
        .key("pk", s("kept"));
    assert_eq!(error_of(delete.send().await), denied("DeleteItem"));
    let batch = reader
        .batch_write_item()
        .request_items("Alpha", vec![put_request("new")]);
    assert_eq!(error_of(batch.send().await), denied("BatchWriteItem"));
    let transaction = reader
        .transact_write_items()
        .transact_items(put("Alpha", "new"));
    assert_eq!(error_of(transaction.send().await), denied("PutItem"));
    let create = reader
        .create_table()
        .table_name("Gamma")
        .key_schema(common::table_keys(&[("pk", "S")]).0[0].clone())
        .attribute_definitions(common::table_keys(&[("pk", "S")]).1[0].clone())
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest);
    assert_eq!(
        error_of(create.send().await),
        not_allowed("reader", "CreateTable", &table_arn("Gamma"))
    );

    // Nothing was written.
    let scan = setup.admin.scan().table_name("Alpha").send().await.unwrap();
    assert_eq!(scan.items(), [[("pk".to_string(), s("kept"))].into()]);
}

#[tokio::test]
async fn an_explicit_deny_wins_over_an_allow() {
    let setup = Setup::new();
    common::create_table(&setup.admin, "Alpha", &[("pk", "S")]).await;
    let (_, key) = setup.key_with_policy(
        "no-deletes",
        r#"{"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:Delete*", "Resource": "arn:aws:dynamodb:*:*:table/Alpha"}]}"#,
    );
    key.put_item()
        .table_name("Alpha")
        .item("pk", s("a"))
        .send()
        .await
        .unwrap();
    let delete = key.delete_item().table_name("Alpha").key("pk", s("a"));
    assert_eq!(
        error_of(delete.send().await),
        (
            "AccessDeniedException".to_string(),
            format!(
                "User: arn:aws:iam::000000000000:user/no-deletes is not authorized to perform: dynamodb:DeleteItem on resource: {} with an explicit deny in an identity-based policy",
                table_arn("Alpha")
            )
        )
    );
    // Transactions check each action: a Delete inside one is the same DeleteItem.
    let transaction_delete = Delete::builder()
        .table_name("Alpha")
        .key("pk", s("a"))
        .build()
        .unwrap();
    let transaction = key
        .transact_write_items()
        .transact_items(put("Alpha", "b"))
        .transact_items(
            TransactWriteItem::builder()
                .delete(transaction_delete)
                .build(),
        );
    let (code, message) = error_of(transaction.send().await);
    assert_eq!(code, "AccessDeniedException");
    assert!(
        message.contains("dynamodb:DeleteItem on resource"),
        "{message}"
    );
    let scan = setup.admin.scan().table_name("Alpha").send().await.unwrap();
    assert_eq!(
        scan.count(),
        1,
        "neither the delete nor the transaction's put happened"
    );
}

#[tokio::test]
async fn a_key_scoped_to_one_table_cannot_read_another() {
    let setup = Setup::new();
    for table in ["Alpha", "Beta"] {
        let (schema, definitions) = common::table_keys(&[("pk", "S"), ("owner", "S")]);
        let index = aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
            .index_name("ByOwner")
            .key_schema(
                aws_sdk_dynamodb::types::KeySchemaElement::builder()
                    .attribute_name("owner")
                    .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .projection(
                aws_sdk_dynamodb::types::Projection::builder()
                    .projection_type(aws_sdk_dynamodb::types::ProjectionType::All)
                    .build(),
            )
            .build()
            .unwrap();
        setup
            .admin
            .create_table()
            .table_name(table)
            .key_schema(schema[0].clone())
            .set_attribute_definitions(Some(definitions))
            .global_secondary_indexes(index)
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        setup
            .admin
            .put_item()
            .table_name(table)
            .item("pk", s("x"))
            .item("owner", s("ann"))
            .send()
            .await
            .unwrap();
    }
    let (_, key) = setup.key_with_policy(
        "table-alpha",
        &format!(
            r#"{{"Statement": [{{"Effect": "Allow", "Action": "dynamodb:*",
                "Resource": ["{0}", "{0}/index/*"]}}]}}"#,
            table_arn("Alpha")
        ),
    );
    let by_owner = |table: &str| {
        key.query()
            .table_name(table)
            .index_name("ByOwner")
            .key_condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s("ann"))
    };
    assert_eq!(by_owner("Alpha").send().await.unwrap().count(), 1);
    key.get_item()
        .table_name("Alpha")
        .key("pk", s("x"))
        .send()
        .await
        .unwrap();

    let denied = |action, resource: &str| not_allowed("table-alpha", action, resource);
    let get = key.get_item().table_name("Beta").key("pk", s("x"));
    assert_eq!(
        error_of(get.send().await),
        denied("GetItem", &table_arn("Beta"))
    );
    let keys = |_: ()| {
        KeysAndAttributes::builder()
            .keys([("pk".to_string(), s("x"))].into())
            .build()
            .unwrap()
    };
    let batch = key
        .batch_get_item()
        .request_items("Alpha", keys(()))
        .request_items("Beta", keys(()));
    assert_eq!(
        error_of(batch.send().await),
        denied("BatchGetItem", &table_arn("Beta"))
    );
    let transaction_get = |table: &str| {
        let get = Get::builder()
            .table_name(table)
            .key("pk", s("x"))
            .build()
            .unwrap();
        TransactGetItem::builder().get(get).build()
    };
    let transaction = key
        .transact_get_items()
        .transact_items(transaction_get("Alpha"))
        .transact_items(transaction_get("Beta"));
    assert_eq!(
        error_of(transaction.send().await),
        denied("GetItem", &table_arn("Beta"))
    );
    assert_eq!(
        error_of(by_owner("Beta").send().await),
        denied("Query", &format!("{}/index/ByOwner", table_arn("Beta")))
    );
    let scan = key.scan().table_name("Beta");
    assert_eq!(
        error_of(scan.send().await),
        denied("Scan", &table_arn("Beta"))
    );
    assert_eq!(
        error_of(key.list_tables().send().await),
        denied("ListTables", &table_arn("*"))
    );
    let tags = key.list_tags_of_resource().resource_arn(table_arn("Beta"));
    assert_eq!(
        error_of(tags.send().await),
        denied("ListTagsOfResource", &table_arn("Beta"))
    );
    let ttl = key.describe_time_to_live().table_name("Beta");
    assert_eq!(
        error_of(ttl.send().await),
        denied("DescribeTimeToLive", &table_arn("Beta"))
    );
}

#[tokio::test]
async fn a_leading_keys_key_touches_only_its_own_partitions() {
    let setup = Setup::new();
    common::create_table(&setup.admin, "Docs", &[("pk", "S"), ("sk", "S")]).await;
    for pk in ["alice", "bob"] {
        setup
            .admin
            .put_item()
            .table_name("Docs")
            .item("pk", s(pk))
            .item("sk", s("1"))
            .send()
            .await
            .unwrap();
    }
    let (_, alice) = setup.key_with_policy(
        "alice",
        &format!(
            r#"{{"Statement": [{{"Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
                           "dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem"],
                "Resource": "{}",
                "Condition": {{"ForAllValues:StringEquals": {{"dynamodb:LeadingKeys": ["alice"]}}}}}}]}}"#,
            table_arn("Docs")
        ),
    );
    let item = |pk: &str, sk: &str| -> std::collections::HashMap<String, Av> {
        [("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))].into()
    };
    let write = |pk: &str| {
        let put = PutRequest::builder()
            .set_item(Some(item(pk, "2")))
            .build()
            .unwrap();
        WriteRequest::builder().put_request(put).build()
    };
    let transact_put = |pk: &str| {
        let put = Put::builder()
            .table_name("Docs")
            .set_item(Some(item(pk, "3")))
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    };
    let check = |pk: &str| {
        let check = ConditionCheck::builder()
            .table_name("Docs")
            .set_key(Some(item(pk, "1")))
            .condition_expression("attribute_exists(pk)")
            .build()
            .unwrap();
        TransactWriteItem::builder().condition_check(check).build()
    };
    let query = |pk: &str| {
        alice
            .query()
            .table_name("Docs")
            .key_condition_expression("pk = :p AND sk > :s")
            .expression_attribute_values(":p", s(pk))
            .expression_attribute_values(":s", s("0"))
    };

    // Its own partition: every path works.
    let get = alice
        .get_item()
        .table_name("Docs")
        .set_key(Some(item("alice", "1")));
    assert!(get.send().await.unwrap().item().is_some());
    let put_item = alice
        .put_item()
        .table_name("Docs")
        .set_item(Some(item("alice", "1")));
    put_item.send().await.unwrap();
    assert_eq!(query("alice").send().await.unwrap().count(), 1);
    let batch = alice
        .batch_write_item()
        .request_items("Docs", vec![write("alice")]);
    batch.send().await.unwrap();
    let transaction = alice
        .transact_write_items()
        .transact_items(transact_put("alice"))
        .transact_items(check("alice"));
    transaction.send().await.unwrap();
    // KeyConditions (the legacy form) name the partition too.
    let legacy = alice.query().table_name("Docs").key_conditions(
        "pk",
        aws_sdk_dynamodb::types::Condition::builder()
            .comparison_operator(aws_sdk_dynamodb::types::ComparisonOperator::Eq)
            .attribute_value_list(s("alice"))
            .build()
            .unwrap(),
    );
    assert_eq!(legacy.send().await.unwrap().count(), 3);

    // Anyone else's: refused, whichever path.
    let denied = |action| not_allowed("alice", action, &table_arn("Docs"));
    let get = alice
        .get_item()
        .table_name("Docs")
        .set_key(Some(item("bob", "1")));
    assert_eq!(error_of(get.send().await), denied("GetItem"));
    let put_item = alice
        .put_item()
        .table_name("Docs")
        .set_item(Some(item("bob", "9")));
    assert_eq!(error_of(put_item.send().await), denied("PutItem"));
    assert_eq!(error_of(query("bob").send().await), denied("Query"));
    let batch = alice
        .batch_write_item()
        .request_items("Docs", vec![write("alice"), write("bob")]);
    assert_eq!(error_of(batch.send().await), denied("BatchWriteItem"));
    let transaction = alice
        .transact_write_items()
        .transact_items(transact_put("alice"))
        .transact_items(transact_put("bob"));
    assert_eq!(error_of(transaction.send().await), denied("PutItem"));
    let transaction = alice
        .transact_write_items()
        .transact_items(transact_put("alice"))
        .transact_items(check("bob"));
    assert_eq!(
        error_of(transaction.send().await),
        denied("ConditionCheckItem")
    );
    // A Scan names no partition: it is outside a LeadingKeys condition.
    assert_eq!(
        error_of(alice.scan().table_name("Docs").send().await),
        denied("Scan")
    );

    let bob_items = setup
        .admin
        .query()
        .table_name("Docs")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(bob_items.count(), 1, "bob's partition is untouched");
}

#[tokio::test]
async fn a_policy_change_is_in_force_from_the_next_request() {
    let setup = Setup::new();
    common::create_table(&setup.admin, "Alpha", &[("pk", "S")]).await;
    let allow = |action: &str| {
        format!(
            r#"{{"Statement": {{"Effect": "Allow", "Action": "dynamodb:{action}", "Resource": "*"}}}}"#
        )
    };
    let (id, key) = setup.key_with_policy("changing", &allow("GetItem"));
    let get = || key.get_item().table_name("Alpha").key("pk", s("a"));
    let put_item = || key.put_item().table_name("Alpha").item("pk", s("a"));
    get().send().await.unwrap();
    assert_eq!(error_of(put_item().send().await).0, "AccessDeniedException");

    set_policy(&setup.file, setup.dir.path(), &id, &allow("PutItem"));
    put_item().send().await.unwrap();
    assert_eq!(error_of(get().send().await).0, "AccessDeniedException");

    haven_keys(&setup.file, &["policy", &id, "--clear"]);
    get().send().await.unwrap();
    put_item().send().await.unwrap();
    let listed = haven_keys(&setup.file, &["list"]);
    assert!(
        listed.contains(&format!("{id}\tchanging\tfull access")),
        "{listed}"
    );
}

#[tokio::test]
async fn partiql_statements_need_partiql_permissions() {
    use aws_sdk_dynamodb::types::{BatchStatementRequest, ParameterizedStatement};
    let setup = Setup::new();
    common::create_table(&setup.admin, "Music", &[("pk", "S")]).await;
    let (_, writer) = setup.key_with_policy(
        "writer",
        &format!(
            r#"{{"Statement": [
                {{"Effect": "Allow", "Action": ["dynamodb:PartiQLInsert", "dynamodb:PartiQLSelect"], "Resource": "{}"}},
                {{"Effect": "Allow", "Action": "dynamodb:PartiQLUpdate", "Resource": "{}",
                  "Condition": {{"ForAllValues:StringEquals": {{"dynamodb:LeadingKeys": ["mine"]}}}}}}]}}"#,
            table_arn("Music"),
            table_arn("Music")
        ),
    );
    let run = |statement: &str| writer.execute_statement().statement(statement).send();
    run("INSERT INTO Music VALUE {'pk':'mine'}").await.unwrap();
    run("INSERT INTO Music VALUE {'pk':'theirs'}")
        .await
        .unwrap();
    run("SELECT * FROM Music").await.unwrap();
    run("UPDATE Music SET n = 1 WHERE pk = 'mine'")
        .await
        .unwrap();
    assert_eq!(
        error_of(run("UPDATE Music SET n = 1 WHERE pk = 'theirs'").await),
        not_allowed("writer", "PartiQLUpdate", &table_arn("Music"))
    );
    assert_eq!(
        error_of(run("DELETE FROM Music WHERE pk = 'mine'").await),
        not_allowed("writer", "PartiQLDelete", &table_arn("Music"))
    );
    let index_read = run("SELECT * FROM \"Music\".\"byTitle\"").await;
    assert_eq!(
        error_of(index_read),
        not_allowed(
            "writer",
            "PartiQLSelect",
            &format!("{}/index/byTitle", table_arn("Music"))
        )
    );

    // Each statement of a batch or a transaction needs its own permission.
    let batch = writer
        .batch_execute_statement()
        .statements(
            BatchStatementRequest::builder()
                .statement("INSERT INTO Music VALUE {'pk':'b1'}")
                .build()
                .unwrap(),
        )
        .statements(
            BatchStatementRequest::builder()
                .statement("DELETE FROM Music WHERE pk = 'mine'")
                .build()
                .unwrap(),
        )
        .send()
        .await;
    assert_eq!(
        error_of(batch),
        not_allowed("writer", "PartiQLDelete", &table_arn("Music"))
    );
    let statement = |text: &str| {
        ParameterizedStatement::builder()
            .statement(text)
            .build()
            .unwrap()
    };
    let transaction = writer
        .execute_transaction()
        .transact_statements(statement("UPDATE Music SET n = 2 WHERE pk = 'mine'"))
        .transact_statements(statement("UPDATE Music SET n = 2 WHERE pk = 'theirs'"))
        .send()
        .await;
    assert_eq!(
        error_of(transaction),
        not_allowed("writer", "PartiQLUpdate", &table_arn("Music"))
    );
    let got = setup
        .admin
        .get_item()
        .table_name("Music")
        .key("pk", s("theirs"))
        .send()
        .await
        .unwrap();
    assert!(got.item().unwrap().get("n").is_none(), "nothing ran");
}
