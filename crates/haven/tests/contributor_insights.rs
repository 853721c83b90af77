//! Contributor insights settings through the real binary with the AWS SDK for Rust: Describe,
//! Update (ENABLE and DISABLE, table and global index, ENABLING settling into ENABLED as DynamoDB
//! reports it), List (one table or all, paging), and DynamoDB's errors. The top-keys report
//! itself (CloudWatch rules) is not built: no description carries a rule list.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    ContributorInsightsAction as Action, ContributorInsightsMode as Mode,
    ContributorInsightsStatus as Status, CreateGlobalSecondaryIndexAction,
    DeleteGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, IndexStatus, Projection,
    ProjectionType,
};
use common::{HavenServer, error_of};

async fn update(client: &Client, table: &str, index: Option<&str>, action: Action) -> Status {
    let answer = client
        .update_contributor_insights()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .contributor_insights_action(action)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.table_name(), Some(table));
    assert_eq!(answer.index_name(), index);
    answer.contributor_insights_status().unwrap().clone()
}

async fn status(client: &Client, table: &str, index: Option<&str>) -> Status {
    let described = client
        .describe_contributor_insights()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .send()
        .await
        .unwrap();
    assert!(described.contributor_insights_rule_list().is_empty());
    described.contributor_insights_status().unwrap().clone()
}

/// Polls the setting until it reads `wanted` (DynamoDB settles in seconds; Haven in one).
async fn settles(client: &Client, table: &str, index: Option<&str>, wanted: Status) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(client, table, index).await != wanted {
        assert!(
            Instant::now() < deadline,
            "{table} {index:?} not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every summary ListContributorInsights gives, following NextToken with pages of `page`.
async fn list_all(client: &Client, page: i32) -> Vec<(String, Option<String>, Status)> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let listed = client
            .list_contributor_insights()
            .max_results(page)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        let summaries = listed.contributor_insights_summaries();
        assert!(summaries.len() <= page as usize);
        all.extend(summaries.iter().map(|s| {
            (
                s.table_name().unwrap().to_owned(),
                s.index_name().map(str::to_owned),
                s.contributor_insights_status().unwrap().clone(),
            )
        }));
        token = listed.next_token().map(str::to_owned);
        if token.is_none() {
            return all;
        }
    }
}

#[tokio::test]
async fn settings_of_tables_and_global_indexes() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    orders(&client, "Orders").await;
    let fresh = client
        .describe_contributor_insights()
        .table_name("Orders")
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.contributor_insights_status(), Some(&Status::Disabled));
    assert_eq!(fresh.last_update_date_time(), None);
    assert_eq!(fresh.contributor_insights_mode(), None);
    // Disabling what was never enabled changes nothing.
    assert_eq!(
        update(&client, "Orders", None, Action::Disable).await,
        Status::Disabled
    );

    assert_eq!(
        update(&client, "Orders", None, Action::Enable).await,
        Status::Enabling
    );
    settles(&client, "Orders", None, Status::Enabled).await;
    assert_eq!(
        update(&client, "Orders", None, Action::Enable).await,
        Status::Enabled
    );
    let described = client
        .describe_contributor_insights()
        .table_name("Orders")
        .send()
        .await
        .unwrap();
    assert!(described.last_update_date_time().is_some());
    assert_eq!(
        described.contributor_insights_mode(),
        Some(&Mode::AccessedAndThrottledKeys)
    );

    let by_day = client
        .update_contributor_insights()
        .table_name("Orders")
        .index_name("ByDay")
        .contributor_insights_action(Action::Enable)
        .contributor_insights_mode(Mode::ThrottledKeys)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_day.contributor_insights_status(),
        Some(&Status::Enabling)
    );
    assert_eq!(
        by_day.contributor_insights_mode(),
        Some(&Mode::ThrottledKeys)
    );
    assert_eq!(status(&client, "Orders", None).await, Status::Enabled);
    settles(&client, "Orders", Some("ByDay"), Status::Enabled).await;

    let listed = client
        .list_contributor_insights()
        .table_name("Orders")
        .send()
        .await
        .unwrap();
    let names: Vec<Option<&str>> = listed
        .contributor_insights_summaries()
        .iter()
        .map(|s| s.index_name())
        .collect();
    assert_eq!(names, [None, Some("ByDay")], "the table before its index");

    assert_eq!(
        update(&client, "Orders", None, Action::Disable).await,
        Status::Disabling
    );
    settles(&client, "Orders", None, Status::Disabled).await;
    let listed = list_all(&client, 100).await;
    assert_eq!(
        listed,
        [(
            "Orders".to_string(),
            Some("ByDay".to_string()),
            Status::Enabled
        )],
        "a disabled setting is not listed"
    );
}

#[tokio::test]
async fn every_table_is_listed_page_by_page() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    for table in ["Aaa-1", "Aaa", "Bbb"] {
        orders(&client, table).await;
        update(&client, table, None, Action::Enable).await;
        update(&client, table, Some("ByDay"), Action::Enable).await;
    }
    let expected: Vec<(String, Option<String>)> = ["Aaa", "Aaa-1", "Bbb"]
        .iter()
        .flat_map(|t| {
            [
                (t.to_string(), None),
                (t.to_string(), Some("ByDay".to_string())),
            ]
        })
        .collect();
    for page in [1, 2, 100] {
        let listed: Vec<(String, Option<String>)> = list_all(&client, page)
            .await
            .into_iter()
            .map(|(table, index, _)| (table, index))
            .collect();
        assert_eq!(listed, expected, "pages of {page}");
    }
}

#[tokio::test]
async fn a_recreated_index_starts_without_the_old_setting() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    orders(&client, "Orders").await;
    update(&client, "Orders", Some("ByDay"), Action::Enable).await;
    let delete = GlobalSecondaryIndexUpdate::builder()
        .delete(
            DeleteGlobalSecondaryIndexAction::builder()
                .index_name("ByDay")
                .build()
                .unwrap(),
        )
        .build();
    change_index(&client, delete, None).await;
    assert!(
        list_all(&client, 100).await.is_empty(),
        "no setting of a dropped index"
    );
    let (day_key, _) = common::table_keys(&[("day", "S")]);
    let create = CreateGlobalSecondaryIndexAction::builder()
        .index_name("ByDay")
        .set_key_schema(Some(day_key))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap();
    let create = GlobalSecondaryIndexUpdate::builder().create(create).build();
    change_index(&client, create, Some(IndexStatus::Active)).await;
    assert_eq!(
        status(&client, "Orders", Some("ByDay")).await,
        Status::Disabled
    );
}

/// Applies an index update to Orders' ByDay and waits until the index has `status` (None: gone).
async fn change_index(
    client: &Client,
    update: GlobalSecondaryIndexUpdate,
    status: Option<IndexStatus>,
) {
    let (_, day) = common::table_keys(&[("day", "S")]);
    client
        .update_table()
        .table_name("Orders")
        .set_attribute_definitions(Some(day))
        .global_secondary_index_updates(update)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let table = client
            .describe_table()
            .table_name("Orders")
            .send()
            .await
            .unwrap();
        let indexes = table.table().unwrap().global_secondary_indexes();
        let current = indexes.iter().find(|i| i.index_name() == Some("ByDay"));
        if current.map(|i| i.index_status().unwrap().clone()) == status {
            return;
        }
        assert!(Instant::now() < deadline, "ByDay not {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn errors_are_dynamodb_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    orders(&client, "Orders").await;
    let not_found = |message: &str| ("ResourceNotFoundException".to_string(), message.to_string());
    let missing = client
        .describe_contributor_insights()
        .table_name("Nope")
        .send()
        .await;
    assert_eq!(
        error_of(missing),
        not_found("Requested resource not found: Table: Nope not found")
    );
    for index in ["ByPk", "Unknown"] {
        let refused = client
            .update_contributor_insights()
            .table_name("Orders")
            .index_name(index)
            .contributor_insights_action(Action::Enable)
            .send()
            .await;
        assert_eq!(
            error_of(refused),
            not_found(&format!(
                "Requested resource not found: Index: {index} not found for table: Orders"
            )),
            "a local index has no settings of its own"
        );
    }
    let listed = client
        .list_contributor_insights()
        .table_name("Nope")
        .send()
        .await;
    assert_eq!(
        error_of(listed),
        not_found("Requested resource not found: Table: Nope not found")
    );
    let bad_action = client
        .update_contributor_insights()
        .table_name("Orders")
        .contributor_insights_action(Action::from("on"))
        .send()
        .await;
    assert_eq!(
        error_of(bad_action),
        (
            "ValidationException".into(),
            "1 validation error detected: Value 'on' at 'contributorInsightsAction' failed to satisfy constraint: Member must satisfy enum value set: [ENABLE, DISABLE]".into()
        )
    );
    let too_many = client
        .list_contributor_insights()
        .max_results(101)
        .send()
        .await;
    assert_eq!(
        error_of(too_many),
        (
            "ValidationException".into(),
            "1 validation error detected: Value '101' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100".into()
        )
    );
}

/// A table keyed by `pk` and `sk` with a global index `ByDay` and a local index `ByPk`.
async fn orders(client: &Client, name: &str) {
    let keys = [("pk", "S"), ("sk", "S")];
    common::create_table_with_indexes(client, name, &keys, &[("ByDay", "day")], &[("ByPk", "day")])
        .await;
}
