"""Validates envsync --json documents against docs/json/*.schema.json (JSON Schema 2020-12).

Usage: validate.py SCHEMA_DIR DOC.json...  Each document is checked against the schema of
its own "command"; every schema is itself checked first. Exit 1 on any violation.
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


def main() -> int:
    schema_dir = pathlib.Path(sys.argv[1])
    registry = Registry()
    by_command = {}
    for path in sorted(schema_dir.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
        by_command[path.name.removesuffix(".schema.json")] = schema
    failures = 0
    for doc_path in sys.argv[2:]:
        doc = json.loads(pathlib.Path(doc_path).read_text())
        schema = by_command.get(doc.get("command"))
        if schema is None:
            print(f"{doc_path}: no schema for command {doc.get('command')!r}")
            failures += 1
            continue
        validator = Draft202012Validator(schema, registry=registry)
        for error in validator.iter_errors(doc):
            print(f"{doc_path}: {error.json_path}: {error.message}")
            failures += 1
    print(f"validated {len(sys.argv) - 2} documents: {failures} violations")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
