//! DynamoDB JSON 1.0 request bodies, built cheaply: the table name and payloads are rendered once
//! and each request only appends its key. Items are `{pk, [sk], v, upd, data}` of about
//! `item_size` bytes by DynamoDB's size rules (attribute names plus values).

use std::fmt::Write;

/// Items per partition in the sort-key layout (workload E): `pk = p<i / 100>`, `sk = i % 100`.
pub const ITEMS_PER_PARTITION: u64 = 100;
/// Size of the `upd` attribute that updates rewrite (YCSB updates one 100-byte field).
const UPDATE_FIELD_BYTES: usize = 100;
/// Leading digits of an update's value that hold its version (the rest is filler).
const VERSION_DIGITS: usize = 20;
/// How many different payloads items cycle through.
const PAYLOAD_VARIANTS: usize = 16;

/// How items are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `pk` (S) only: item i is `pk = user<i>`.
    Hash,
    /// `pk` (S) and `sk` (N): item i is `pk = p<i / 100>`, `sk = i % 100`.
    Range,
}

/// One DynamoDB operation, ready to send.
#[derive(Clone, Debug)]
pub struct Call {
    /// The operation name (the part of `X-Amz-Target` after the dot).
    pub op: &'static str,
    pub body: String,
}

/// Builds the benchmark's requests for one table.
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    table: String,
    layout: Layout,
    payloads: Vec<String>,
    update: String,
}

impl RequestBuilder {
    /// A builder for `table`, with items of about `item_size` bytes.
    pub fn new(table: &str, layout: Layout, item_size: usize) -> Self {
        let fixed = 2
            + 16
            + 1
            + 21
            + 3
            + UPDATE_FIELD_BYTES
            + 4
            + if layout == Layout::Range { 2 + 21 } else { 0 };
        let data_len = item_size.saturating_sub(fixed).max(1);
        let payloads = (0..PAYLOAD_VARIANTS)
            .map(|seed| filler(data_len, seed as u64))
            .collect();
        RequestBuilder {
            table: table.to_string(),
            layout,
            payloads,
            update: filler(UPDATE_FIELD_BYTES, 99),
        }
    }

    /// CreateTable, on demand billing, with a stream of `stream`'s view type if given.
    pub fn create_table(&self, stream: Option<&str>) -> Call {
        let (definitions, schema) = match self.layout {
            Layout::Hash => (
                r#"[{"AttributeName":"pk","AttributeType":"S"}]"#,
                r#"[{"AttributeName":"pk","KeyType":"HASH"}]"#,
            ),
            Layout::Range => (
                r#"[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"N"}]"#,
                r#"[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}]"#,
            ),
        };
        let stream = stream.map_or_else(String::new, |view| {
            format!(r#","StreamSpecification":{{"StreamEnabled":true,"StreamViewType":"{view}"}}"#)
        });
        let body = format!(
            r#"{{"TableName":"{}","AttributeDefinitions":{definitions},"KeySchema":{schema},"BillingMode":"PAY_PER_REQUEST"{stream}}}"#,
            self.table
        );
        Call {
            op: "CreateTable",
            body,
        }
    }

    /// DescribeTable.
    pub fn describe_table(&self) -> Call {
        Call {
            op: "DescribeTable",
            body: format!(r#"{{"TableName":"{}"}}"#, self.table),
        }
    }

    /// PutItem of item `i` (version 0).
    pub fn put(&self, i: u64) -> Call {
        let mut body = self.start(220 + self.payload_len());
        body.push_str(r#","Item":"#);
        self.item(&mut body, i);
        body.push('}');
        Call {
            op: "PutItem",
            body,
        }
    }

    /// BatchWriteItem putting items `first..first + count`.
    pub fn batch_put(&self, first: u64, count: u64) -> Call {
        let mut body = String::with_capacity(64 + count as usize * (240 + self.payload_len()));
        write!(body, r#"{{"RequestItems":{{"{}":["#, self.table).unwrap();
        for i in first..first + count {
            if i > first {
                body.push(',');
            }
            body.push_str(r#"{"PutRequest":{"Item":"#);
            self.item(&mut body, i);
            body.push_str("}}");
        }
        body.push_str("]}}");
        Call {
            op: "BatchWriteItem",
            body,
        }
    }

    /// GetItem of item `i`.
    pub fn get(&self, i: u64) -> Call {
        let mut body = self.start(96);
        body.push_str(r#","Key":"#);
        self.key(&mut body, i);
        body.push('}');
        Call {
            op: "GetItem",
            body,
        }
    }

    /// UpdateItem rewriting item `i`'s 100-byte `upd` attribute with a value of its own (led by
    /// `version`), so that every update changes the item.
    pub fn update(&self, i: u64, version: u64) -> Call {
        let mut body = self.start(240);
        body.push_str(r#","Key":"#);
        self.key(&mut body, i);
        body.push_str(
            r#","UpdateExpression":"SET upd = :u","ExpressionAttributeValues":{":u":{"S":""#,
        );
        push_padded(&mut body, version, VERSION_DIGITS);
        body.push_str(&self.update[VERSION_DIGITS..]);
        body.push_str(r#""}}}"#);
        Call {
            op: "UpdateItem",
            body,
        }
    }

    /// UpdateItem of item `i` that succeeds only if its version is still `version` (workload F).
    pub fn update_if_version(&self, i: u64, version: u64) -> Call {
        let mut body = self.start(320);
        body.push_str(r#","Key":"#);
        self.key(&mut body, i);
        write!(
            body,
            r#","UpdateExpression":"SET upd = :u, v = :next","ConditionExpression":"v = :v","ExpressionAttributeValues":{{":u":{{"S":"{}"}},":v":{{"N":"{version}"}},":next":{{"N":"{}"}}}}}}"#,
            self.update,
            version + 1
        )
        .unwrap();
        Call {
            op: "UpdateItem",
            body,
        }
    }

    /// Query of partition `partition` from sort key `from`, at most `limit` items (workload E).
    pub fn query(&self, partition: u64, from: u64, limit: u64) -> Call {
        let mut body = self.start(240);
        write!(
            body,
            r#","KeyConditionExpression":"pk = :p AND sk >= :s","ExpressionAttributeValues":{{":p":{{"S":"p{partition:08}"}},":s":{{"N":"{from}"}}}},"Limit":{limit}}}"#
        )
        .unwrap();
        Call { op: "Query", body }
    }

    /// ExecuteStatement selecting item `i` by its key: GetItem through PartiQL.
    pub fn select_key(&self, i: u64) -> Call {
        let mut body = String::with_capacity(160 + self.table.len());
        let clause = match self.layout {
            Layout::Hash => "pk = ?",
            Layout::Range => "pk = ? AND sk = ?",
        };
        write!(
            body,
            r#"{{"Statement":"SELECT * FROM \"{}\" WHERE {clause}","Parameters":"#,
            self.table
        )
        .unwrap();
        body.push('[');
        self.key_values(&mut body, i, false);
        body.push_str("]}");
        Call {
            op: "ExecuteStatement",
            body,
        }
    }

    /// ExecuteStatement selecting partition `partition` from sort key `from`, at most `limit`
    /// items: [`RequestBuilder::query`] through PartiQL.
    pub fn select_range(&self, partition: u64, from: u64, limit: u64) -> Call {
        let mut body = String::with_capacity(200 + self.table.len());
        write!(
            body,
            r#"{{"Statement":"SELECT * FROM \"{}\" WHERE pk = ? AND sk >= ?","Parameters":[{{"S":"p{partition:08}"}},{{"N":"{from}"}}],"Limit":{limit}}}"#,
            self.table
        )
        .unwrap();
        Call {
            op: "ExecuteStatement",
            body,
        }
    }

    fn start(&self, extra: usize) -> String {
        let mut body = String::with_capacity(32 + self.table.len() + extra);
        write!(body, r#"{{"TableName":"{}""#, self.table).unwrap();
        body
    }

    fn payload_len(&self) -> usize {
        self.payloads[0].len() + self.update.len()
    }

    fn key(&self, out: &mut String, i: u64) {
        out.push('{');
        self.key_values(out, i, true);
        out.push('}');
    }

    /// Item `i`'s key values, comma-separated: named (`"pk":{...}`) for a key map, bare for a
    /// statement's parameters.
    fn key_values(&self, out: &mut String, i: u64, named: bool) {
        let name = |out: &mut String, attribute: &str| {
            if named {
                write!(out, r#""{attribute}":"#).unwrap();
            }
        };
        name(out, "pk");
        match self.layout {
            Layout::Hash => {
                out.push_str(r#"{"S":"user"#);
                push_padded(out, i, 12);
                out.push_str(r#""}"#);
            }
            Layout::Range => {
                write!(out, r#"{{"S":"p{:08}"}},"#, i / ITEMS_PER_PARTITION).unwrap();
                name(out, "sk");
                write!(out, r#"{{"N":"{}"}}"#, i % ITEMS_PER_PARTITION).unwrap();
            }
        }
    }

    fn item(&self, out: &mut String, i: u64) {
        self.key(out, i);
        out.pop();
        let data = &self.payloads[i as usize % PAYLOAD_VARIANTS];
        write!(
            out,
            r#","v":{{"N":"0"}},"upd":{{"S":"{}"}},"data":{{"S":"{data}"}}}}"#,
            self.update
        )
        .unwrap();
    }
}

/// Appends `value` in decimal, zero-padded to `width` digits (cheaper than `format!`).
fn push_padded(out: &mut String, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    while value > 0 || at == digits.len() {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    let start = at.min(digits.len() - width.min(20));
    out.push_str(std::str::from_utf8(&digits[start..]).expect("ASCII digits"));
}

/// `len` pseudo-random alphanumeric characters (no JSON escaping needed, compresses poorly).
fn filler(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = crate::keys::Rng::new(seed);
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// The version (`v`) of the item in a GetItem response, without parsing the whole body.
pub fn version_of(response: &[u8]) -> Option<u64> {
    const NEEDLE: &[u8] = br#""v":{"N":""#;
    let start = response.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let digits = response[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&response[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn selects_name_the_key_as_parameters() {
        let hash = RequestBuilder::new("t", Layout::Hash, 1024).select_key(42);
        assert_eq!(hash.op, "ExecuteStatement");
        let body = parse(&hash);
        assert_eq!(body["Statement"], r#"SELECT * FROM "t" WHERE pk = ?"#);
        assert_eq!(
            body["Parameters"],
            serde_json::json!([{"S": "user000000000042"}])
        );
        let range = RequestBuilder::new("t", Layout::Range, 1024);
        assert_eq!(
            parse(&range.select_key(4321))["Parameters"],
            serde_json::json!([{"S": "p00000043"}, {"N": "21"}])
        );
        let body = parse(&range.select_range(7, 10, 5));
        assert_eq!(
            body["Statement"],
            r#"SELECT * FROM "t" WHERE pk = ? AND sk >= ?"#
        );
        assert_eq!(body["Limit"], 5);
    }

    fn parse(call: &Call) -> Value {
        serde_json::from_str(&call.body).expect("valid JSON")
    }

    /// DynamoDB's item size: attribute names plus string lengths plus about 21 bytes per number.
    fn dynamo_size(item: &Value) -> usize {
        let attrs = item.as_object().unwrap();
        attrs
            .iter()
            .map(|(name, value)| {
                name.len()
                    + match value.get("S") {
                        Some(s) => s.as_str().unwrap().len(),
                        None => 21,
                    }
            })
            .sum()
    }

    #[test]
    fn put_builds_a_one_kilobyte_item() {
        for layout in [Layout::Hash, Layout::Range] {
            let builder = RequestBuilder::new("bench", layout, 1024);
            let body = parse(&builder.put(1234));
            assert_eq!(body["TableName"], "bench");
            let size = dynamo_size(&body["Item"]);
            assert!((1000..=1024).contains(&size), "{layout:?}: {size}");
        }
    }

    #[test]
    fn keys_follow_the_layout() {
        let hash = RequestBuilder::new("t", Layout::Hash, 1024);
        assert_eq!(
            parse(&hash.get(42))["Key"],
            serde_json::json!({"pk": {"S": "user000000000042"}})
        );
        let range = RequestBuilder::new("t", Layout::Range, 1024);
        assert_eq!(
            parse(&range.get(4217))["Key"],
            serde_json::json!({"pk": {"S": "p00000042"}, "sk": {"N": "17"}})
        );
    }

    #[test]
    fn numbers_are_zero_padded() {
        let mut out = String::new();
        for (value, width) in [(0, 12), (42, 12), (123_456_789_012_345, 12), (7, 1)] {
            push_padded(&mut out, value, width);
            out.push(' ');
        }
        assert_eq!(out, "000000000000 000000000042 123456789012345 7 ");
    }

    #[test]
    fn batch_put_lists_consecutive_items() {
        let builder = RequestBuilder::new("t", Layout::Hash, 1024);
        let call = builder.batch_put(10, 25);
        assert_eq!(call.op, "BatchWriteItem");
        let requests = parse(&call)["RequestItems"]["t"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(requests.len(), 25);
        assert_eq!(
            requests[24]["PutRequest"]["Item"]["pk"]["S"],
            "user000000000034"
        );
    }

    #[test]
    fn updates_queries_and_tables_are_valid_json() {
        let builder = RequestBuilder::new("t", Layout::Range, 1024);
        let update = parse(&builder.update(5, 42));
        assert_eq!(
            update["ExpressionAttributeValues"][":u"]["S"]
                .as_str()
                .unwrap()
                .len(),
            100
        );
        assert!(
            update["ExpressionAttributeValues"][":u"]["S"]
                .as_str()
                .unwrap()
                .starts_with("00000000000000000042")
        );
        let conditional = parse(&builder.update_if_version(5, 7));
        assert_eq!(conditional["ExpressionAttributeValues"][":next"]["N"], "8");
        assert_eq!(conditional["ConditionExpression"], "v = :v");
        let query = parse(&builder.query(3, 10, 25));
        assert_eq!(query["Limit"], 25);
        assert_eq!(query["ExpressionAttributeValues"][":p"]["S"], "p00000003");
        assert_eq!(
            parse(&builder.create_table(None))["KeySchema"][1]["KeyType"],
            "RANGE"
        );
        assert_eq!(parse(&builder.describe_table())["TableName"], "t");
    }

    #[test]
    fn version_is_read_from_a_get_response() {
        let response = br#"{"Item":{"pk":{"S":"a"},"v":{"N":"12"},"data":{"S":"x"}}}"#;
        assert_eq!(version_of(response), Some(12));
        assert_eq!(version_of(b"{}"), None);
    }
}
