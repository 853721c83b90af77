//! Applying an update to an item with DynamoDB's semantics. Every SET value is computed from the item
//! as it was before the update. SET, ADD and DELETE then run in document-path order whatever their
//! order in the text (so `SET c[4] = :x, c[2] = :y` on a two-element list appends `:y` then `:x`),
//! and REMOVE runs last, list elements from the highest index down, so indexes keep naming the
//! original elements. The item is only changed when the whole update succeeds. When an update has
//! several faults, the one reported is the one DynamoDB finds first (see `UpdateExpression::check`).

use haven_model::{AttributeValue, Item, Number, NumberError};

use crate::ast::{SetValue, UpdateAction, UpdateOperand};
use crate::update::UpdateExpression;
use crate::{ExprError, Path, PathElement};

const INVALID_PATH: &str =
    "The document path provided in the update expression is invalid for update";
const WRONG_TYPE: &str = "An operand in the update expression has an incorrect data type";
const MISSING: &str =
    "The provided expression refers to an attribute that does not exist in the item";

/// The paths of an update's actions, as written. ReturnValues UPDATED_OLD / UPDATED_NEW are the old /
/// new item projected onto them with [`crate::project`], which is what DynamoDB returns (an element
/// appended past the end of a list shows only if an action's index happens to name it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdatedPaths(pub Vec<Path>);

impl UpdatedPaths {
    /// The top-level attributes touched, sorted (DynamoDB Local returns whole attributes this way).
    pub fn attribute_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.iter().map(Path::root).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// The error for an update that names a key attribute.
pub fn key_attribute_error(name: &str) -> ExprError {
    ExprError(format!(
        "One or more parameter values were invalid: Cannot update attribute {name}. This attribute is part of the key"
    ))
}

impl UpdateExpression {
    /// Fails when an action writes or removes (part of) a key attribute.
    pub fn check_key_attributes(&self, key_attribute_names: &[&str]) -> Result<(), ExprError> {
        match self
            .actions
            .iter()
            .map(|a| a.path().root())
            .find(|root| key_attribute_names.contains(root))
        {
            Some(name) => Err(key_attribute_error(name)),
            None => Ok(()),
        }
    }

    /// Applies the update to `item` (an empty item when it did not exist yet); a failed update
    /// leaves `item` as it was.
    pub fn apply(
        &self,
        item: &mut Item,
        key_attribute_names: &[&str],
    ) -> Result<UpdatedPaths, ExprError> {
        let (new, updated) = self.apply_to(item.clone(), key_attribute_names)?;
        *item = new;
        Ok(updated)
    }

    /// Applies the update to an item the caller gives up (its own copy of the current item): the
    /// item is changed where it lies, with no copy to keep for a failure, which drops it. A copy
    /// of a 1 KB item and its drop were a tenth of UpdateItem's own instructions.
    pub fn apply_to(
        &self,
        item: Item,
        key_attribute_names: &[&str],
    ) -> Result<(Item, UpdatedPaths), ExprError> {
        self.check_key_attributes(key_attribute_names)?;
        let values = self.check(&item)?;
        let mut writes = Vec::new();
        let mut removes = Vec::new();
        for (action, value) in self.actions.iter().zip(values) {
            match action {
                UpdateAction::Set(path, _) => {
                    writes.push((path, Write::Set(value.expect("SET values are computed"))));
                }
                UpdateAction::Add(path, _, value) => writes.push((path, Write::Add(value))),
                UpdateAction::Delete(path, _, value) => writes.push((path, Write::Delete(value))),
                UpdateAction::Remove(path) => removes.push(path),
            }
        }
        let mut new = item;
        writes.sort_by(|a, b| a.0.cmp(b.0));
        for (path, change) in writes {
            match change {
                Write::Set(value) => write(&mut new, path, value)?,
                Write::Add(value) => add(&mut new, path, value)?,
                Write::Delete(value) => delete(&mut new, path, value)?,
            }
        }
        removes.sort_by(|a, b| b.cmp(a));
        for path in removes {
            remove(&mut new, path)?;
        }
        let updated = UpdatedPaths(self.actions.iter().map(|a| a.path().clone()).collect());
        Ok((new, updated))
    }

    /// The checks DynamoDB makes before changing anything, in its order (measured against DynamoDB
    /// Local): paths through list indexes or nested below the second level must lead somewhere;
    /// DELETE operands must match the sets they remove from; SET values are computed, the greatest
    /// path first; ADD targets must exist and fit their operands, the greatest path first. Returns
    /// the SET values, by action. Problems found only while writing come after all of these.
    fn check(&self, item: &Item) -> Result<Vec<Option<AttributeValue>>, ExprError> {
        for action in &self.actions {
            let path = action.path();
            let indexed = path.0.iter().any(|e| matches!(e, PathElement::Index(_)));
            let checked_early =
                indexed || (path.0.len() > 2 && !matches!(action, UpdateAction::Delete(..)));
            if checked_early && !leads_somewhere(item, path) {
                return Err(ExprError::new(INVALID_PATH));
            }
        }
        for action in &self.actions {
            if let UpdateAction::Delete(path, _, value) = action
                && path
                    .resolve(item)
                    .is_some_and(|existing| set_difference(existing, value).is_none())
            {
                return Err(ExprError::new(WRONG_TYPE));
            }
        }
        let mut values = vec![None; self.actions.len()];
        for (i, action) in descending_paths(&self.actions) {
            if let UpdateAction::Set(_, value) = action {
                values[i] = Some(evaluate_set(value, item)?);
            }
        }
        for (_, action) in descending_paths(&self.actions) {
            if let UpdateAction::Add(path, _, value) = action {
                if !leads_somewhere(item, path) {
                    return Err(ExprError::new(INVALID_PATH));
                }
                added(path.resolve(item), value)?;
            }
        }
        Ok(values)
    }
}

/// The actions with their positions, the greatest path first.
fn descending_paths(actions: &[UpdateAction]) -> Vec<(usize, &UpdateAction)> {
    let mut sorted: Vec<(usize, &UpdateAction)> = actions.iter().enumerate().collect();
    sorted.sort_by(|a, b| b.1.path().cmp(a.1.path()));
    sorted
}

/// Whether the container that would hold the path's last element exists and has the right kind
/// (the item itself for a top-level attribute, a map for a name, a list for an index).
fn leads_somewhere(item: &Item, path: &Path) -> bool {
    let steps = &path.0[..path.0.len() - 1];
    if steps.is_empty() {
        return true;
    }
    let container = Path(steps.to_vec()).resolve(item);
    matches!(
        (container, last(path)),
        (Some(AttributeValue::M(_)), PathElement::Name(_))
            | (Some(AttributeValue::L(_)), PathElement::Index(_))
    )
}

/// A SET (with its value already computed), ADD or DELETE waiting to be applied.
enum Write<'u> {
    Set(AttributeValue),
    Add(&'u AttributeValue),
    Delete(&'u AttributeValue),
}

fn evaluate_set(value: &SetValue, item: &Item) -> Result<AttributeValue, ExprError> {
    match value {
        SetValue::Operand(o) => evaluate(o, item),
        SetValue::Plus(a, b) => arithmetic(a, b, item, false),
        SetValue::Minus(a, b) => arithmetic(a, b, item, true),
    }
}

/// Evaluates `operand`, which must be a number; like DynamoDB, the left operand's type is checked
/// before the right operand is read.
fn number_operand(operand: &UpdateOperand, item: &Item) -> Result<Number, ExprError> {
    match evaluate(operand, item)? {
        AttributeValue::N(n) => Ok(n),
        _ => Err(ExprError::new(WRONG_TYPE)),
    }
}

fn arithmetic(
    a: &UpdateOperand,
    b: &UpdateOperand,
    item: &Item,
    subtract: bool,
) -> Result<AttributeValue, ExprError> {
    let a = number_operand(a, item)?;
    let b = number_operand(b, item)?;
    let result = if subtract {
        a.checked_sub(b)
    } else {
        a.checked_add(b)
    };
    result.map(AttributeValue::N).map_err(arithmetic_error)
}

/// Arithmetic results beyond 38 digits have their own message; range errors keep the Number's.
pub(crate) fn arithmetic_error(error: NumberError) -> ExprError {
    match error {
        NumberError::TooManyDigits => {
            ExprError::new("DynamoDB only supports precision up to 38 digits")
        }
        other => ExprError(other.to_string()),
    }
}

fn evaluate(operand: &UpdateOperand, item: &Item) -> Result<AttributeValue, ExprError> {
    match operand {
        UpdateOperand::Path(path) => path.resolve(item).cloned().ok_or(ExprError::new(MISSING)),
        UpdateOperand::Value { value, .. } => Ok(value.clone()),
        UpdateOperand::IfNotExists(path, fallback) => match path.resolve(item) {
            Some(value) => Ok(value.clone()),
            None => evaluate(fallback, item),
        },
        UpdateOperand::ListAppend(a, b) => {
            let mut list = list_operand(a, item)?;
            list.extend(list_operand(b, item)?);
            Ok(AttributeValue::L(list))
        }
    }
}

/// Evaluates `operand`, which must be a list.
fn list_operand(operand: &UpdateOperand, item: &Item) -> Result<Vec<AttributeValue>, ExprError> {
    match evaluate(operand, item)? {
        AttributeValue::L(list) => Ok(list),
        _ => Err(ExprError::new(WRONG_TYPE)),
    }
}

/// The container holding the path's last element: the item itself for a top-level attribute.
enum Parent<'i> {
    Item(&'i mut Item),
    Value(&'i mut AttributeValue),
}

/// Finds the parent of `path`'s last element; `None` when some step is missing or of another type.
fn parent<'i>(item: &'i mut Item, path: &Path) -> Option<Parent<'i>> {
    let steps = &path.0[..path.0.len() - 1];
    let Some((first, rest)) = steps.split_first() else {
        return Some(Parent::Item(item));
    };
    let PathElement::Name(root) = first else {
        return None;
    };
    let mut current = item.get_mut(root)?;
    for step in rest {
        current = child_mut(current, step)?;
    }
    Some(Parent::Value(current))
}

fn child_mut<'v>(
    value: &'v mut AttributeValue,
    element: &PathElement,
) -> Option<&'v mut AttributeValue> {
    match (value, element) {
        (AttributeValue::M(map), PathElement::Name(name)) => map.get_mut(name),
        (AttributeValue::L(list), PathElement::Index(i)) => list.get_mut(*i),
        _ => None,
    }
}

fn last(path: &Path) -> &PathElement {
    path.0.last().expect("paths are never empty")
}

/// Writes `value` at `path`; an index past the end of a list appends.
fn write(item: &mut Item, path: &Path, value: AttributeValue) -> Result<(), ExprError> {
    match (parent(item, path), last(path)) {
        (Some(Parent::Item(item)), PathElement::Name(name)) => {
            item.insert(name.clone(), value);
        }
        (Some(Parent::Value(AttributeValue::M(map))), PathElement::Name(name)) => {
            map.insert(name.clone(), value);
        }
        (Some(Parent::Value(AttributeValue::L(list))), PathElement::Index(i)) => {
            if *i < list.len() {
                list[*i] = value;
            } else {
                list.push(value);
            }
        }
        _ => return Err(ExprError::new(INVALID_PATH)),
    }
    Ok(())
}

/// Removes what `path` names. Removing a missing map key or a list index past the end does
/// nothing, but the containers on the way must exist.
fn remove(item: &mut Item, path: &Path) -> Result<(), ExprError> {
    match (parent(item, path), last(path)) {
        (Some(Parent::Item(item)), PathElement::Name(name)) => {
            item.remove(name);
        }
        (Some(Parent::Value(AttributeValue::M(map))), PathElement::Name(name)) => {
            map.remove(name);
        }
        (Some(Parent::Value(AttributeValue::L(list))), PathElement::Index(i)) => {
            if *i < list.len() {
                list.remove(*i);
            }
        }
        _ => return Err(ExprError::new(INVALID_PATH)),
    }
    Ok(())
}

/// ADD: number addition or set union; a missing attribute starts from the value itself.
fn add(item: &mut Item, path: &Path, value: &AttributeValue) -> Result<(), ExprError> {
    let combined = added(path.resolve(item), value)?;
    write(item, path, combined)
}

/// What ADD turns `existing` into.
fn added(
    existing: Option<&AttributeValue>,
    value: &AttributeValue,
) -> Result<AttributeValue, ExprError> {
    match (existing, value) {
        (None, v) => Ok(v.clone()),
        (Some(AttributeValue::N(a)), AttributeValue::N(b)) => Ok(AttributeValue::N(
            a.checked_add(*b).map_err(arithmetic_error)?,
        )),
        (Some(a), b) => set_union(a, b).ok_or(ExprError::new(WRONG_TYPE)),
    }
}

/// Union of two sets of the same type; `None` when they are not sets of one type.
pub(crate) fn set_union(a: &AttributeValue, b: &AttributeValue) -> Option<AttributeValue> {
    fn union<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
        let mut out = a.to_vec();
        out.extend(b.iter().filter(|x| !a.contains(x)).cloned());
        out
    }
    Some(match (a, b) {
        (AttributeValue::Ss(a), AttributeValue::Ss(b)) => AttributeValue::Ss(union(a, b)),
        (AttributeValue::Ns(a), AttributeValue::Ns(b)) => AttributeValue::Ns(union(a, b)),
        (AttributeValue::Bs(a), AttributeValue::Bs(b)) => AttributeValue::Bs(union(a, b)),
        _ => return None,
    })
}

/// Members of `a` not in `b`; `None` when they are not sets of one type.
pub(crate) fn set_difference(a: &AttributeValue, b: &AttributeValue) -> Option<AttributeValue> {
    fn difference<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    }
    Some(match (a, b) {
        (AttributeValue::Ss(a), AttributeValue::Ss(b)) => AttributeValue::Ss(difference(a, b)),
        (AttributeValue::Ns(a), AttributeValue::Ns(b)) => AttributeValue::Ns(difference(a, b)),
        (AttributeValue::Bs(a), AttributeValue::Bs(b)) => AttributeValue::Bs(difference(a, b)),
        _ => return None,
    })
}

/// DELETE: set difference; an emptied set removes the attribute, a missing one is left missing.
fn delete(item: &mut Item, path: &Path, value: &AttributeValue) -> Result<(), ExprError> {
    let Some(existing) = path.resolve(item).cloned() else {
        // Nothing to delete from, but the containers on the way must exist and fit the path.
        return match (parent(item, path), last(path)) {
            (Some(Parent::Item(_)), PathElement::Name(_))
            | (Some(Parent::Value(AttributeValue::M(_))), PathElement::Name(_))
            | (Some(Parent::Value(AttributeValue::L(_))), PathElement::Index(_)) => Ok(()),
            _ => Err(ExprError::new(INVALID_PATH)),
        };
    };
    let remaining = set_difference(&existing, value).ok_or(ExprError::new(WRONG_TYPE))?;
    let empty = crate::eval::size(&remaining) == Some(0);
    if empty {
        remove(item, path)?;
    } else {
        write(item, path, remaining)?;
    }
    Ok(())
}
