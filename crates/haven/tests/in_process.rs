//! `haven-testing`'s in-process server as a Rust project's test would use it: the AWS SDK against
//! its endpoint, from inside a tokio runtime and from a plain test; each server starts empty, and
//! a dropped server stops answering.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use haven_testing::TestServer;

async fn round_trip(client: &aws_sdk_dynamodb::Client) {
    common::create_table(client, "Things", &[("id", "S")]).await;
    let key = AttributeValue::S("1".into());
    let put = client
        .put_item()
        .table_name("Things")
        .item("id", key.clone());
    put.send().await.unwrap();
    let got = client.get_item().table_name("Things").key("id", key);
    assert!(got.send().await.unwrap().item.is_some());
}

#[tokio::test]
async fn serves_the_sdk_from_inside_a_runtime_and_each_server_is_fresh() {
    let first = TestServer::start().unwrap();
    round_trip(&common::sdk_client(&first.endpoint())).await;
    let second = TestServer::start().unwrap();
    assert_ne!(first.endpoint(), second.endpoint());
    let tables = common::sdk_client(&second.endpoint()).list_tables();
    assert!(tables.send().await.unwrap().table_names().is_empty());
}

#[test]
fn serves_a_plain_test_and_stops_when_dropped() {
    let server = TestServer::start().unwrap();
    let address = server.address();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(round_trip(&common::sdk_client(&server.endpoint())));
    drop(server);
    assert!(!listening(address));
}

/// Whether a server accepts connections at `address`. A connection whose two ends are the same
/// address is not one: with nothing listening on a port of the ephemeral range, Linux can pick
/// that very port as the client's and connect the socket to itself (TCP simultaneous open).
fn listening(address: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect(address)
        .is_ok_and(|stream| stream.local_addr().ok() != Some(address))
}
