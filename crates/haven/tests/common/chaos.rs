//! Clients that give up: control-plane requests sent on raw connections that close at random
//! moments (issue 15), shared by the wedge test and the soak test.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::raw_request_head;

/// Tables the writers write to while their metadata is changed under them.
pub const WRITTEN: [&str; 3] = ["Written0", "Written1", "Written2"];
/// Tables created and deleted at random.
pub const TRANSIENT: usize = 6;

/// A small deterministic generator (xorshift), seeded per thread so that a failure can be replayed.
pub struct Random(pub u64);

impl Random {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub fn arn(table: &str) -> String {
    format!("arn:aws:dynamodb:us-east-1:000000000000:table/{table}")
}

/// One random control-plane request: its operation and body.
pub fn random_request(random: &mut Random) -> (&'static str, String) {
    let written = WRITTEN[random.below(3) as usize];
    let n = random.below(20);
    match random.below(8) {
        0 => (
            "TagResource",
            format!(
                r#"{{"ResourceArn":"{}","Tags":[{{"Key":"k{n}","Value":"v{}"}}]}}"#,
                arn(written),
                random.below(1000)
            ),
        ),
        1 => (
            "UntagResource",
            format!(r#"{{"ResourceArn":"{}","TagKeys":["k{n}"]}}"#, arn(written)),
        ),
        2 => (
            "UpdateTimeToLive",
            format!(
                r#"{{"TableName":"{written}","TimeToLiveSpecification":{{"Enabled":{},"AttributeName":"expires"}}}}"#,
                n.is_multiple_of(2)
            ),
        ),
        3 if n.is_multiple_of(2) => (
            "UpdateTable",
            format!(
                r#"{{"TableName":"{written}","BillingMode":"PROVISIONED","ProvisionedThroughput":{{"ReadCapacityUnits":{},"WriteCapacityUnits":5}}}}"#,
                n + 1
            ),
        ),
        3 => (
            "UpdateTable",
            format!(r#"{{"TableName":"{written}","BillingMode":"PAY_PER_REQUEST"}}"#),
        ),
        4 => (
            "UpdateTable",
            format!(
                r#"{{"TableName":"{written}","AttributeDefinitions":[{{"AttributeName":"g","AttributeType":"S"}}],"GlobalSecondaryIndexUpdates":[{{"Create":{{"IndexName":"G{}","KeySchema":[{{"AttributeName":"g","KeyType":"HASH"}}],"Projection":{{"ProjectionType":"ALL"}}}}}}]}}"#,
                n % 4
            ),
        ),
        5 => (
            "UpdateTable",
            format!(
                r#"{{"TableName":"{written}","GlobalSecondaryIndexUpdates":[{{"Delete":{{"IndexName":"G{}"}}}}]}}"#,
                n % 4
            ),
        ),
        6 => (
            "CreateTable",
            format!(
                r#"{{"TableName":"Transient{}","KeySchema":[{{"AttributeName":"pk","KeyType":"HASH"}}],"AttributeDefinitions":[{{"AttributeName":"pk","AttributeType":"S"}}],"BillingMode":"PAY_PER_REQUEST"}}"#,
                n % TRANSIENT as u64
            ),
        ),
        _ => (
            "DeleteTable",
            format!(r#"{{"TableName":"Transient{}"}}"#, n % TRANSIENT as u64),
        ),
    }
}

/// Sends one request on a fresh connection and closes it after `linger` without reading the
/// answer: the server sees its client go before, during or after the commit.
pub fn send_and_abandon(address: SocketAddr, operation: &str, body: &str, linger: Duration) {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return;
    };
    let head = raw_request_head(
        operation,
        &format!("Content-Length: {}\r\n\r\n", body.len()),
    );
    let _ = stream.write_all((head + body).as_bytes());
    std::thread::sleep(linger);
}

/// A seed from the clock, printed so that a failing run can be replayed.
pub fn seed() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    seed
}
