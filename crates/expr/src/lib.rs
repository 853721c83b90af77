//! DynamoDB expressions: parsing and evaluation of condition, update and projection expressions.
