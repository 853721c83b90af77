//! The three input formats, one record at a time: a DynamoDB JSON line (`{"Item": {...}}`, the
//! line AWS's exports write), an Ion text line (`$ion_1_0 {Item:{...}}`, read with Amazon's
//! `ion-rs`, sets as `$dynamodb_SS::[...]` and the like), or a CSV record. Ion values are turned
//! into DynamoDB JSON and read by the wire reader every request uses, so an item is checked by
//! one set of rules whatever its format. A record that is not an item answers why, for the
//! error count and the log.

use std::collections::BTreeMap;

use base64::Engine as _;
use haven_model::Item;
use ion_rs::{Element, IonType};
use serde_json::{Map, Value, json};

/// Turns records into items for one import.
pub(crate) enum Format {
    DynamoDbJson,
    Ion,
    Csv(Csv),
}

/// A CSV import's settings.
pub(crate) struct Csv {
    pub delimiter: char,
    /// HeaderList, when the request gave one (else each object's first record is its header).
    pub header: Option<Vec<String>>,
    /// The type of each key attribute (table and indexes) other than S: `N` or `B`.
    pub key_types: BTreeMap<String, String>,
}

impl Format {
    /// Whether a line end inside double quotes continues the record.
    pub(crate) fn quoted(&self) -> bool {
        matches!(self, Format::Csv(_))
    }

    /// The item a record holds; `header` is the CSV header in effect for the object.
    pub(crate) fn item(&self, record: &[u8], header: &[String]) -> Result<Item, String> {
        let text = std::str::from_utf8(record).map_err(|_| "the line is not UTF-8".to_string())?;
        let value = match self {
            Format::DynamoDbJson => {
                let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
                wrapped_item(value)?
            }
            Format::Ion => wrapped_item(ion_line(text)?)?,
            Format::Csv(csv) => csv.item(text, header)?,
        };
        crate::wire::parse_item(&value).map_err(|e| e.message().unwrap_or_default())
    }
}

/// The item of a `{"Item": {...}}` record (AWS's export lines; nothing else on the line).
fn wrapped_item(value: Value) -> Result<Value, String> {
    match value {
        Value::Object(mut object) if object.len() == 1 => match object.remove("Item") {
            Some(item @ Value::Object(_)) => Ok(item),
            _ => Err("the line has no Item object".into()),
        },
        _ => Err("the line is not an object with one member, Item".into()),
    }
}

/// One Ion value from a line, as DynamoDB JSON.
fn ion_line(text: &str) -> Result<Value, String> {
    let element = Element::read_one(text.as_bytes()).map_err(|e| e.to_string())?;
    ion_to_json(&element, 0)
}

/// Deepest nesting read (DynamoDB's own limit is 32 levels).
const MAX_DEPTH: usize = 40;

/// An Ion value as DynamoDB JSON: the top-level struct as a map of attribute values, and every
/// value beneath as the attribute value AWS's Ion export writes for it.
fn ion_to_json(element: &Element, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("the value is nested too deeply".into());
    }
    let fields = element.as_struct().ok_or("expected a struct")?;
    let mut map = Map::new();
    for (name, value) in fields.iter() {
        let name = name.text().ok_or("a field name without text")?;
        let converted = if depth == 0 {
            ion_to_json(value, depth + 1)?
        } else {
            attribute(value, depth + 1)?
        };
        map.insert(name.to_string(), converted);
    }
    Ok(Value::Object(map))
}

/// One attribute value in DynamoDB JSON.
fn attribute(element: &Element, depth: usize) -> Result<Value, String> {
    if element.is_null() {
        return Ok(json!({ "NULL": true }));
    }
    let annotations = element.annotations();
    for (annotation, kind) in [
        ("$dynamodb_SS", "SS"),
        ("$dynamodb_NS", "NS"),
        ("$dynamodb_BS", "BS"),
    ] {
        if annotations.contains(annotation) {
            let members = element.as_sequence().ok_or("a set that is not a list")?;
            let values: Result<Vec<Value>, String> = members
                .elements()
                .map(|member| {
                    scalar(member)?
                        .get(&kind[..1])
                        .cloned()
                        .ok_or("a mixed set".into())
                })
                .collect();
            return Ok(json!({ kind: values? }));
        }
    }
    match element.ion_type() {
        IonType::Struct => Ok(json!({ "M": ion_to_json(element, depth)? })),
        IonType::List => {
            let list = element.as_sequence().ok_or("a list without elements")?;
            let values: Result<Vec<Value>, String> = list
                .elements()
                .map(|member| attribute(member, depth + 1))
                .collect();
            Ok(json!({ "L": values? }))
        }
        IonType::Bool => Ok(json!({ "BOOL": element.as_bool() })),
        _ => scalar(element),
    }
}

/// A string, number or blob attribute value.
fn scalar(element: &Element) -> Result<Value, String> {
    if let Some(text) = element.as_text() {
        return Ok(json!({ "S": text }));
    }
    if let Some(int) = element.as_int() {
        return Ok(json!({ "N": int.to_string() }));
    }
    if let Some(decimal) = element.as_decimal() {
        let number = format!("{}E{}", decimal.coefficient(), decimal.exponent());
        return Ok(json!({ "N": number }));
    }
    if let Some(bytes) = element.as_lob() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        return Ok(json!({ "B": encoded }));
    }
    Err(format!(
        "an Ion {} has no DynamoDB type",
        element.ion_type()
    ))
}

impl Csv {
    /// A CSV record's item: each non-empty field an attribute named by the header, a string
    /// unless the table or an index declares the attribute as a number or binary key.
    fn item(&self, text: &str, header: &[String]) -> Result<Value, String> {
        let fields = split_csv(text, self.delimiter)?;
        if fields.len() != header.len() {
            return Err(format!(
                "the record has {} fields and the header {}",
                fields.len(),
                header.len()
            ));
        }
        let mut item = Map::new();
        for (name, field) in header.iter().zip(fields) {
            if field.is_empty() {
                continue;
            }
            let kind = self.key_types.get(name).map_or("S", String::as_str);
            item.insert(name.clone(), json!({ kind: field }));
        }
        Ok(Value::Object(item))
    }
}

/// Splits a CSV record into its fields (RFC 4180: a field in double quotes may hold the
/// delimiter, line ends and `""` for a quote).
pub(crate) fn split_csv(text: &str, delimiter: char) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, c) if c == delimiter => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field does not end".into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_follow_rfc_4180() {
        assert_eq!(split_csv("a,b,,c", ',').unwrap(), ["a", "b", "", "c"]);
        assert_eq!(
            split_csv("\"x,y\",\"say \"\"hi\"\"\"\t", ',').unwrap(),
            ["x,y", "say \"hi\"\t"]
        );
        assert_eq!(split_csv("1|\"a\nb\"", '|').unwrap(), ["1", "a\nb"]);
        assert!(split_csv("\"open", ',').is_err());
    }

    #[test]
    fn ion_lines_become_dynamodb_json() {
        let line = r#"$ion_1_0 {Item:{Id:103.,Small:1.5d-3,Authors:$dynamodb_SS::["A","B"],Nums:$dynamodb_NS::[1,2.],Blob:{{aGk=}},Gone:null,Ok:true,Tags:["t",1],Dims:{W:8}}}"#;
        let value = wrapped_item(ion_line(line).unwrap()).unwrap();
        let item = crate::wire::parse_item(&value).unwrap();
        let rendered = crate::wire::item_to_json(&item);
        assert_eq!(rendered["Id"], json!({"N": "103"}));
        assert_eq!(rendered["Small"], json!({"N": "0.0015"}));
        assert_eq!(rendered["Authors"], json!({"SS": ["A", "B"]}));
        assert_eq!(rendered["Blob"], json!({"B": "aGk="}));
        assert_eq!(rendered["Gone"], json!({"NULL": true}));
        assert_eq!(rendered["Dims"], json!({"M": {"W": {"N": "8"}}}));
        assert_eq!(rendered["Tags"], json!({"L": [{"S": "t"}, {"N": "1"}]}));
        let float = ion_line("{Item:{F:2.5e0}}").unwrap_err();
        assert!(float.contains("float"), "{float}");
    }
}
