//! Policies in the spirit of IAM's: statements that Allow or Deny DynamoDB actions on table and
//! index ARNs, optionally only for some partition keys (`dynamodb:LeadingKeys`). A key's policy is
//! an identity-based policy (no Principal: it speaks for its key); a table's or stream's resource
//! policy (`Policy::parse_resource`) names in each statement the principals it is about.
//!
//! Only what Haven can enforce is accepted: Effect, Action, Resource, Sid, Principal (resource
//! policies only: `*`, or `AWS` account ids and IAM ARNs) and the one condition
//! `ForAllValues:StringEquals` on `dynamodb:LeadingKeys`. Anything else (NotAction, other
//! conditions) is refused when the policy is read, because silently ignoring a restriction would
//! grant more than its author meant.

use serde_json::Value;

/// A parsed policy; the document it came from is kept so it can be written back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
    document: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    effect: Effect,
    /// Action patterns, lowercased: IAM matches action names without regard to case.
    actions: Vec<String>,
    /// Resource ARN patterns, matched with case.
    resources: Vec<String>,
    /// The partition key values allowed by a `dynamodb:LeadingKeys` condition.
    leading_keys: Option<Vec<String>>,
    /// Whom the statement is about (resource policies); None in an identity-based policy.
    principals: Option<Vec<PrincipalPattern>>,
}

/// One principal a resource policy's statement names.
#[derive(Debug, Clone, PartialEq)]
enum PrincipalPattern {
    /// `*`: every caller.
    Anyone,
    /// An account id (`123456789012`, or its `arn:aws:iam::123456789012:root`): its every key.
    Account(String),
    /// One IAM ARN (`arn:aws:iam::123456789012:user/alice`): the key of that name.
    Arn(String),
}

/// The caller a resource policy is evaluated for: its account and its IAM ARN
/// (`arn:aws:iam::<account>:user/<key name>`).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub account: &'a str,
    pub arn: &'a str,
}

/// One permission a request needs: an action (`GetItem`) on a resource ARN, for some partition
/// keys (empty when the request names none, as a Scan or a control-plane request).
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub action: &'static str,
    pub resource: String,
    pub leading_keys: Vec<String>,
}

/// What a policy says about one permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No statement allows it (IAM's default deny).
    NotAllowed,
    /// A Deny statement matches it; it wins over any Allow.
    ExplicitlyDenied,
}

impl Policy {
    /// Reads a policy document (JSON). The error says what is wrong, in a sentence.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let document: Value =
            serde_json::from_str(text).map_err(|e| format!("the policy is not JSON: {e}"))?;
        Policy::from_document(document, Kind::Identity)
    }

    /// Reads a resource-based policy, already parsed as JSON: each statement names its
    /// Principal.
    pub fn parse_resource(document: Value) -> Result<Policy, String> {
        Policy::from_document(document, Kind::Resource)
    }

    fn from_document(document: Value, kind: Kind) -> Result<Policy, String> {
        let object = document
            .as_object()
            .ok_or("a policy is a JSON object with a Statement")?;
        for member in object.keys() {
            if !matches!(member.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!("unsupported policy member {member}"));
            }
        }
        let read = |value: &Value| statement(value, kind);
        let statements = match object.get("Statement") {
            Some(Value::Array(list)) => list.iter().map(read).collect::<Result<_, _>>()?,
            Some(single @ Value::Object(_)) => vec![read(single)?],
            _ => return Err("a policy needs a Statement (an object or a list of them)".into()),
        };
        Ok(Policy {
            statements,
            document,
        })
    }

    /// The document as it was read.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Whether any statement has a `dynamodb:LeadingKeys` condition (only then does a request's
    /// partition keys matter).
    pub fn uses_leading_keys(&self) -> bool {
        self.statements.iter().any(|s| s.leading_keys.is_some())
    }

    /// IAM's evaluation of an identity-based policy: an explicit Deny wins, then any Allow, else
    /// the default deny.
    pub fn decide(&self, permission: &Permission) -> Decision {
        self.decide_for(None, permission)
    }

    /// [`Policy::decide`] for a resource-based policy: only the statements naming `caller` count.
    pub fn decide_for(&self, caller: Option<Caller>, permission: &Permission) -> Decision {
        let applies = |s: &&Statement| s.names(caller) && s.applies_to(permission);
        let matching: Vec<&Statement> = self.statements.iter().filter(applies).collect();
        if matching.iter().any(|s| s.effect == Effect::Deny) {
            Decision::ExplicitlyDenied
        } else if matching.iter().any(|s| s.effect == Effect::Allow) {
            Decision::Allowed
        } else {
            Decision::NotAllowed
        }
    }
}

impl Statement {
    /// Whether the statement is about `caller` (an identity-based statement is about its key).
    fn names(&self, caller: Option<Caller>) -> bool {
        let Some(principals) = &self.principals else {
            return true;
        };
        let Some(caller) = caller else {
            return false;
        };
        principals.iter().any(|p| match p {
            PrincipalPattern::Anyone => true,
            PrincipalPattern::Account(account) => account == caller.account,
            PrincipalPattern::Arn(arn) => arn == caller.arn,
        })
    }

    fn applies_to(&self, permission: &Permission) -> bool {
        let action = format!("dynamodb:{}", permission.action).to_ascii_lowercase();
        self.actions.iter().any(|p| wildcard_match(p, &action))
            && self
                .resources
                .iter()
                .any(|p| wildcard_match(p, &permission.resource))
            && self.leading_keys.as_ref().is_none_or(|allowed| {
                // Haven, unlike IAM's ForAllValues, never lets an empty set of keys pass: a
                // request that names no partition (a Scan) is outside a LeadingKeys condition.
                !permission.leading_keys.is_empty()
                    && permission.leading_keys.iter().all(|k| allowed.contains(k))
            })
    }
}

/// Which kind of policy a document is.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Identity,
    Resource,
}

fn statement(value: &Value, kind: Kind) -> Result<Statement, String> {
    let object = value.as_object().ok_or("a Statement is a JSON object")?;
    for member in object.keys() {
        let principal = member == "Principal" && kind == Kind::Resource;
        if !principal
            && !matches!(
                member.as_str(),
                "Sid" | "Effect" | "Action" | "Resource" | "Condition"
            )
        {
            return Err(format!("unsupported statement member {member}"));
        }
    }
    let principals = match kind {
        Kind::Identity => None,
        Kind::Resource => Some(principals(object.get("Principal"))?),
    };
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("a statement's Effect is Allow or Deny".into()),
    };
    let actions = strings(object.get("Action"), "Action")?
        .into_iter()
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let resources = strings(object.get("Resource"), "Resource")?;
    let leading_keys = object.get("Condition").map(condition).transpose()?;
    Ok(Statement {
        effect,
        actions,
        resources,
        leading_keys,
        principals,
    })
}

/// A resource policy statement's Principal: `"*"`, or `{"AWS": ...}` with account ids, account
/// root ARNs or IAM ARNs (one or a list).
fn principals(value: Option<&Value>) -> Result<Vec<PrincipalPattern>, String> {
    let invalid = || "Invalid principal in policy document.".to_string();
    let value = value.ok_or("Missing required field Principal")?;
    if value.as_str() == Some("*") {
        return Ok(vec![PrincipalPattern::Anyone]);
    }
    let object = value.as_object().ok_or_else(invalid)?;
    let [(member, names)] = object.iter().collect::<Vec<_>>()[..] else {
        return Err(invalid());
    };
    if member != "AWS" {
        return Err(invalid());
    }
    let names = strings(Some(names), "Principal").map_err(|_| invalid())?;
    names
        .iter()
        .map(|name| principal(name).ok_or_else(invalid))
        .collect()
}

fn principal(name: &str) -> Option<PrincipalPattern> {
    let is_account = |text: &str| text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit());
    if name == "*" {
        return Some(PrincipalPattern::Anyone);
    }
    if is_account(name) {
        return Some(PrincipalPattern::Account(name.to_owned()));
    }
    let rest = name.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if !is_account(account) || resource.is_empty() {
        return None;
    }
    Some(if resource == "root" {
        PrincipalPattern::Account(account.to_owned())
    } else {
        PrincipalPattern::Arn(name.to_owned())
    })
}

/// The only condition Haven knows: `{"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [...]}}`.
fn condition(value: &Value) -> Result<Vec<String>, String> {
    let unsupported = || {
        "the only supported Condition is ForAllValues:StringEquals on dynamodb:LeadingKeys"
            .to_string()
    };
    let object = value.as_object().ok_or_else(unsupported)?;
    let [(operator, keys)] = object.iter().collect::<Vec<_>>()[..] else {
        return Err(unsupported());
    };
    let keys = keys.as_object().ok_or_else(unsupported)?;
    let [(key, values)] = keys.iter().collect::<Vec<_>>()[..] else {
        return Err(unsupported());
    };
    // Condition operators match without case, condition keys too (IAM's rules).
    if !operator.eq_ignore_ascii_case("ForAllValues:StringEquals")
        || !key.eq_ignore_ascii_case("dynamodb:LeadingKeys")
    {
        return Err(unsupported());
    }
    strings(Some(values), "dynamodb:LeadingKeys")
}

/// A string or a non-empty list of strings.
fn strings(value: Option<&Value>, member: &str) -> Result<Vec<String>, String> {
    let invalid = || format!("a statement's {member} is a string or a list of strings");
    match value {
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        _ => Err(invalid()),
    }
}

/// IAM's wildcards: `*` matches any run of characters, `?` any one character.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last `*`: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            last_star = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = last_star {
            p = star + 1;
            t = matched + 1;
            last_star = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn permission(action: &'static str, resource: &str, keys: &[&str]) -> Permission {
        Permission {
            action,
            resource: resource.into(),
            leading_keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    const ORDERS: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/Orders";

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard_match("dynamodb:*", "dynamodb:getitem"));
        assert!(wildcard_match("dynamodb:get*", "dynamodb:getitem"));
        assert!(!wildcard_match("dynamodb:get*", "dynamodb:putitem"));
        assert!(wildcard_match("arn:*:table/Ord?rs", ORDERS));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match(
            "arn:*:table/Orders",
            &format!("{ORDERS}/index/ByDate")
        ));
        assert!(wildcard_match(
            "arn:*:table/Orders/*",
            &format!("{ORDERS}/index/ByDate")
        ));
        assert!(wildcard_match("a*b*c", "aXbYbZc"));
        assert!(!wildcard_match("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn explicit_deny_wins_and_default_is_deny() {
        let policy = Policy::parse(
            r#"{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
                {"Effect": "Deny", "Action": ["dynamodb:Delete*"], "Resource": "arn:aws:dynamodb:*:*:table/Orders"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            policy.decide(&permission("GetItem", ORDERS, &[])),
            Decision::Allowed
        );
        assert_eq!(
            policy.decide(&permission("DeleteItem", ORDERS, &[])),
            Decision::ExplicitlyDenied
        );
        let read_only = Policy::parse(
            r#"{"Statement": {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}}"#,
        )
        .unwrap();
        assert_eq!(
            read_only.decide(&permission("PutItem", ORDERS, &[])),
            Decision::NotAllowed
        );
    }

    #[test]
    fn leading_keys_need_every_key_in_the_set_and_at_least_one() {
        let policy = Policy::parse(
            r#"{"Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Scan"],
                "Resource": "*",
                "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["alice", "bob"]}}}]}"#,
        )
        .unwrap();
        let decide = |keys: &[&str]| policy.decide(&permission("GetItem", ORDERS, keys));
        assert_eq!(decide(&["alice"]), Decision::Allowed);
        assert_eq!(decide(&["alice", "bob"]), Decision::Allowed);
        assert_eq!(decide(&["alice", "carol"]), Decision::NotAllowed);
        assert_eq!(
            policy.decide(&permission("Scan", ORDERS, &[])),
            Decision::NotAllowed
        );
    }

    #[test]
    fn what_cannot_be_enforced_is_refused() {
        for text in [
            "[]",
            "{}",
            r#"{"Statement": [{"Effect": "Allow", "NotAction": "dynamodb:*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Maybe", "Action": "dynamodb:*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": "dynamodb:*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*",
                "Condition": {"StringEquals": {"dynamodb:LeadingKeys": "a"}}}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*",
                "Condition": {"ForAllValues:StringEquals": {"aws:SourceIp": "10.0.0.1"}}}]}"#,
        ] {
            assert!(Policy::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn resource_statements_apply_to_the_principals_they_name() {
        let document = serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["111111111111", "arn:aws:iam::222222222222:user/bob"]},
             "Action": "dynamodb:GetItem", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "dynamodb:DeleteItem", "Resource": "*"}]});
        let policy = Policy::parse_resource(document).unwrap();
        let alice = Caller {
            account: "111111111111",
            arn: "arn:aws:iam::111111111111:user/alice",
        };
        let bob = Caller {
            account: "222222222222",
            arn: "arn:aws:iam::222222222222:user/bob",
        };
        let carol = Caller {
            account: "222222222222",
            arn: "arn:aws:iam::222222222222:user/carol",
        };
        let get = permission("GetItem", ORDERS, &[]);
        assert_eq!(policy.decide_for(Some(alice), &get), Decision::Allowed);
        assert_eq!(policy.decide_for(Some(bob), &get), Decision::Allowed);
        assert_eq!(policy.decide_for(Some(carol), &get), Decision::NotAllowed);
        assert_eq!(
            policy.decide(&get),
            Decision::NotAllowed,
            "no caller, no principal"
        );
        let delete = permission("DeleteItem", ORDERS, &[]);
        assert_eq!(
            policy.decide_for(Some(carol), &delete),
            Decision::ExplicitlyDenied
        );

        let without_principal = serde_json::json!({"Statement": {"Effect": "Allow",
            "Action": "dynamodb:GetItem", "Resource": "*"}});
        assert!(Policy::parse_resource(without_principal).is_err());
        let service_principal = serde_json::json!({"Statement": {"Effect": "Allow",
            "Principal": {"Service": "x"}, "Action": "dynamodb:GetItem", "Resource": "*"}});
        assert!(Policy::parse_resource(service_principal).is_err());
        let key_policy_with_principal = r#"{"Statement": {"Effect": "Allow", "Principal": "*",
            "Action": "dynamodb:GetItem", "Resource": "*"}}"#;
        assert!(Policy::parse(key_policy_with_principal).is_err());
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in "\\PC{0,300}") {
            let _ = Policy::parse(&text);
        }

        #[test]
        fn policy_shaped_json_never_panics(
            effect in "(Allow|Deny|allow|\\PC{0,5})",
            action in prop_oneof![Just("\"dynamodb:*\"".to_string()), "\\[(\"[a-zA-Z:*?]{0,12}\",?){0,3}\\]", "[0-9]{1,3}"],
            resource in "\"[a-z:/*?A-Z0-9-]{0,40}\"",
            condition in prop_oneof![Just(String::new()), "\\PC{0,40}", Just(r#", "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["a", 1]}}"#.to_string())],
            pattern in "[a-z*?]{0,12}",
            text in "[a-z]{0,12}",
        ) {
            let document = format!(
                r#"{{"Statement": [{{"Effect": "{effect}", "Action": {action}, "Resource": {resource}{condition}}}]}}"#
            );
            if let Ok(policy) = Policy::parse(&document) {
                let _ = policy.decide(&permission("GetItem", ORDERS, &["a"]));
            }
            let _ = wildcard_match(&pattern, &text);
        }
    }
}
