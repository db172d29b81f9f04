"""The SDK's models against the running service's OpenAPI document: the same fields as each schema's
properties, and the routes the client calls are in the document."""

import httpx

from distillery_sdk import SCHEMAS


def test_every_model_has_exactly_the_schema_properties(url: str) -> None:
    doc = httpx.get(f"{url}/openapi.json").raise_for_status().json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for name, model in SCHEMAS.items():
        assert name in schemas, f"the document has no schema {name}"
        properties = set(schemas[name]["properties"])
        fields = set(model.model_fields)
        assert fields == properties, (
            f"{name}: only in the model {sorted(fields - properties)}, only in the schema {sorted(properties - fields)}"
        )
        # A field the schema requires and never allows null is required by the model too.
        for prop in schemas[name].get("required", []):
            ty = schemas[name]["properties"][prop].get("type")
            nullable = isinstance(ty, list) and "null" in ty
            if not nullable:
                assert model.model_fields[prop].is_required(), f"{name}.{prop} is required by the schema"


def test_the_client_routes_are_documented(url: str) -> None:
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path, method in [
        ("/v1/documents", "get"),
        ("/v1/documents", "post"),
        ("/v1/documents/{id}", "get"),
        ("/v1/documents/{id}/records", "get"),
        ("/v1/stats", "get"),
        ("/v1/exports", "post"),
        ("/v1/exports/{id}", "get"),
        ("/v1/exports/{id}/download", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not in the document"
