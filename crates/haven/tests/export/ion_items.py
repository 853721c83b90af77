"""Reads an ION export's data file (text Ion, gunzipped, on standard input) with Amazon's own Ion
library (PyPI `amazon-ion`) and prints each value's `Item` as one line of DynamoDB JSON, so that
sdk_export.rs compares an Ion export with the table item by item through a reader that is not
Haven's. Every value must carry the `$dynamodb_Item` annotation."""

import base64
import json
import sys

from amazon.ion import simpleion
from amazon.ion.core import IonType

SETS = {"$dynamodb_SS": "SS", "$dynamodb_NS": "NS", "$dynamodb_BS": "BS"}


def scalar(value):
    kind = value.ion_type
    if kind == IonType.DECIMAL:
        return {"N": format(value, "f")}
    if kind == IonType.STRING:
        return {"S": str(value)}
    if kind == IonType.BLOB:
        return {"B": base64.b64encode(bytes(value)).decode()}
    if kind == IonType.BOOL:
        return {"BOOL": bool(value)}
    raise ValueError(f"unexpected Ion type {kind}")


def attribute(value):
    if value.ion_type == IonType.NULL or getattr(value, "is_null", False):
        return {"NULL": True}
    annotations = [a.text for a in value.ion_annotations]
    if value.ion_type == IonType.LIST:
        if annotations:
            kind = SETS[annotations[0]]
            return {kind: [next(iter(scalar(v).values())) for v in value]}
        return {"L": [attribute(v) for v in value]}
    if value.ion_type == IonType.STRUCT:
        return {"M": item(value)}
    return scalar(value)


def item(struct):
    return {name: attribute(value) for name, value in struct.items()}


for value in simpleion.loads(sys.stdin.read(), single_value=False):
    annotations = [a.text for a in value.ion_annotations]
    assert annotations == ["$dynamodb_Item"], annotations
    print(json.dumps({"Item": item(value["Item"])}))
