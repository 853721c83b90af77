//! The data plane's requests read straight from the body's bytes into their input types.
//!
//! Every other request is parsed into a `serde_json::Value` first (its syntax is checked before
//! its target and its Authorization header, in DynamoDB's order), then read into its input type
//! from that tree. For the item operations that tree was pure overhead: building it and reading
//! it again cost a GetItem about a tenth of its instructions (docs/benchmarks.md, "Issue 26").
//! So the server first tries to read the body of these operations as their input type directly
//! (with `crate::json_reader`, which reads strings faster than serde_json and refuses anything it
//! does not read exactly as serde_json would);
//! a body that does not read cleanly (bad syntax, a member of the wrong type, a repeated member,
//! a document nested too deep, not an object) takes the general path, which finds its error in
//! DynamoDB's order. A body that reads cleanly has no syntax error, so skipping that step changes
//! no answer. Its items and keys are read into Haven's item type on the way when they are clean
//! (`crate::wire_item`); an unclean one also sends the request down the general path.

use serde_json::Value;

use super::{Operation, batch, items, parse, query, scan, update_item};
use crate::json_reader::from_text;
use crate::reply::Reply;
use crate::{DynamoError, Service};

macro_rules! decoded {
    ($($name:ident($input:ty)),* $(,)?) => {
        /// A request of one of the data plane's operations, read into its input type.
        pub struct Decoded(Input);

        enum Input { $($name($input)),* }

        impl Decoded {
            /// `body` read as the input of `operation`, when `operation` is one of these and the
            /// body is a JSON object that reads cleanly as its input; None otherwise (the request
            /// then takes the general path).
            pub fn read(operation: Operation, body: &[u8]) -> Option<Decoded> {
                // A struct also reads from a JSON array, member by position: only objects here.
                if body.trim_ascii_start().first() != Some(&b'{') {
                    return None;
                }
                // A body that is not UTF-8 is not read cleanly either.
                let text = std::str::from_utf8(body).ok()?;
                let input = crate::wire_item::reading_straight(|| match operation {
                    $(Operation::$name => from_text(text).ok().map(Input::$name),)*
                    _ => None,
                })?;
                Some(Decoded(input))
            }

            /// `request` (parsed by the general path) read as the input of `operation`; the
            /// request given back when `operation` is not one of these.
            pub(crate) fn from_value(
                operation: Operation,
                request: Value,
            ) -> Result<Result<Decoded, DynamoError>, Value> {
                let input = match operation {
                    $(Operation::$name => parse(request).map(Input::$name),)*
                    _ => return Err(request),
                };
                Ok(input.map(Decoded))
            }
        }
    };
}

decoded!(
    GetItem(items::GetItemInput),
    PutItem(items::PutItemInput),
    DeleteItem(items::DeleteItemInput),
    UpdateItem(update_item::UpdateItemInput),
    Query(query::QueryInput),
    Scan(scan::ScanInput),
    BatchGetItem(batch::BatchGetItemInput),
    BatchWriteItem(batch::BatchWriteItemInput),
);

impl Decoded {
    /// Runs the operation.
    pub(crate) async fn run(self, service: &Service) -> Result<Reply, DynamoError> {
        match self.0 {
            Input::GetItem(input) => items::get_item(service, input).await,
            Input::PutItem(input) => items::put_item(service, input).await,
            Input::DeleteItem(input) => items::delete_item(service, input).await,
            Input::UpdateItem(input) => update_item::update_item(service, input).await,
            Input::Query(input) => query::query(service, input),
            Input::Scan(input) => scan::scan(service, input),
            Input::BatchGetItem(input) => batch::batch_get_item(service, input).await,
            Input::BatchWriteItem(input) => batch::batch_write_item(service, input)
                .await
                .map(Reply::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(operation: Operation, body: &str) -> bool {
        Decoded::read(operation, body.as_bytes()).is_some()
    }

    #[test]
    fn only_clean_objects_of_the_item_operations_read_straight() {
        let get = r#" {"TableName":"t","Key":{"pk":{"S":"a"}},"ConsistentRead":true}"#;
        assert!(reads(Operation::GetItem, get));
        assert!(reads(Operation::BatchWriteItem, r#"{"RequestItems":{}}"#));
        // Members unknown to Haven are ignored, as on the general path.
        assert!(reads(
            Operation::PutItem,
            r#"{"TableName":"t","Later":[1]}"#
        ));
        // Everything else takes the general path, which answers with the right error.
        for (operation, body) in [
            (Operation::CreateTable, r#"{"TableName":"t"}"#),
            (Operation::GetItem, ""),
            (Operation::GetItem, r#"["t",{"pk":{"S":"a"}}]"#),
            (Operation::GetItem, r#"{"TableName":"t""#),
            (Operation::GetItem, r#"{"TableName":1}"#),
            (Operation::GetItem, r#"{"TableName":"t","TableName":"u"}"#),
            (Operation::Query, r#"{"TableName":"t","Limit":"1"}"#),
        ] {
            assert!(!reads(operation, body), "{operation:?} {body}");
        }
    }
}
