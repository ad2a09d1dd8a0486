"""The OpenAPI schema types every answer: real responses of every endpoint, validated strictly.

The schema is generated in-process, as `/api/schema/` serves it. For validation every
object schema that lists `properties` and says nothing about `additionalProperties`
gets `additionalProperties: false`, so a field the schema does not document fails here
instead of reaching a generated client as a field it cannot see.

Each test checks that the (method, path, status) answers it validated are exactly the
ones listed for it in COVERED (or derived from the schema, for the loops over every
operation), and test_every_documented_answer_is_covered_or_explained checks those lists
against the schema: the coverage holds however pytest-xdist spreads the tests.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import resolve
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from rest_framework.test import APIClient

import leadml.health
from leadml.ml.errors import DataError
import predictions.apis
import predictions.services
from leadml.ml.types import MODEL_TYPES
from leadml.api.throttling import ApiTokenRateThrottle
from registry.models import ModelVersion
from tests.registry.test_models_api import second_lead_model
from tests.training.test_transactions_clv import transaction_log
from tests.conftest import OTHER_TENANT, TENANT, clv_request, lead_request
from tests.factories import dataset_with_rows, model_version, tenant_client, train_inline, training_job
from tests.reliability.brokers import broker_down

Answer = tuple[str, str, int]  # (METHOD, /path/{template}, status)

SCHEMA_URI = "urn:leadml:openapi"
LEAD = {"email": "jane@acme-analytics.com", "job_title": "VP Sales", "company": "Acme", "lead_score": 75,
        "engagement_score": 80, "colour": "blue"}
CUSTOMER = {"customer_id": "C1", "total_orders": 12, "total_spent": 5400, "avg_order_value": 450,
            "first_purchase_date": "2024-01-10", "last_purchase_date": "2026-05-01"}
MISSING_ID = "00000000-0000-0000-0000-000000000000"

# What each test below validates, besides the loops over every operation.
COVERED: dict[str, set[Answer]] = {
    "predictions": {
        ("POST", "/predict", 200), ("POST", "/predict", 400), ("POST", "/predict", 403),
        ("POST", "/predict", 404), ("POST", "/predict", 500),
        ("POST", "/predict/batch", 200), ("POST", "/predict/batch", 400), ("POST", "/predict/batch", 403),
        ("POST", "/predict/batch", 404), ("POST", "/predict/batch", 413),
        ("GET", "/insights/{user_id}/{model_type}", 200),
    },
    "models": {
        ("GET", "/models/{user_id}", 200), ("GET", "/models/{user_id}", 429),
        ("POST", "/models/{user_id}/{model_name}/activate", 200),
        ("POST", "/models/{user_id}/{model_name}/activate", 400),
        ("POST", "/models/{user_id}/{model_name}/activate", 404),
        ("POST", "/models/{user_id}/{model_name}/activate", 409),
        ("DELETE", "/models/{user_id}/{model_name}", 200), ("DELETE", "/models/{user_id}/{model_name}", 404),
        ("DELETE", "/models/{user_id}/{model_name}", 409), ("DELETE", "/models/{user_id}/{model_name}", 400),
        ("POST", "/models/{user_id}/{model_name}/retrain", 202),
        ("POST", "/models/{user_id}/{model_name}/retrain", 400),
        ("POST", "/models/{user_id}/{model_name}/retrain", 404),
        ("POST", "/models/{user_id}/{model_name}/retrain", 409),
    },
    "training": {
        ("POST", "/datasets", 201), ("POST", "/datasets", 400), ("POST", "/datasets", 403),
        ("GET", "/datasets/{dataset_id}", 200), ("GET", "/datasets/{dataset_id}", 404),
        ("POST", "/train", 202), ("POST", "/train", 400), ("POST", "/train", 403), ("POST", "/train", 404),
        ("POST", "/train", 409),
        ("GET", "/jobs/{job_id}", 200), ("GET", "/jobs/{job_id}", 404),
        ("POST", "/jobs/{job_id}/cancel", 200), ("POST", "/jobs/{job_id}/cancel", 404),
        ("POST", "/jobs/{job_id}/cancel", 409),
        ("POST", "/preprocess", 200), ("POST", "/preprocess", 400),
    },
    "training_waited": {("POST", "/train", 200), ("POST", "/train", 422), ("GET", "/jobs/{job_id}", 200)},
    "queue_down": {("POST", "/train", 503), ("POST", "/models/{user_id}/{model_name}/retrain", 503)},
    "monitoring": {
        ("POST", "/outcomes", 200), ("POST", "/outcomes", 400), ("POST", "/outcomes", 403),
        ("GET", "/monitoring/{user_id}/{model_type}", 200), ("GET", "/monitoring/{user_id}/{model_type}", 400),
        ("GET", "/monitoring/{user_id}/{model_type}", 404),
        ("GET", "/monitoring/{user_id}/{model_type}/events", 200),
        ("GET", "/monitoring/{user_id}/{model_type}/events", 400),
        ("GET", "/monitoring/{user_id}/{model_type}/triggers", 200),
        ("PUT", "/monitoring/{user_id}/{model_type}/triggers", 200),
        ("PUT", "/monitoring/{user_id}/{model_type}/triggers", 400),
        ("PATCH", "/monitoring/{user_id}/{model_type}/triggers", 200),
        ("PUT", "/monitoring/{user_id}/webhook", 200), ("PUT", "/monitoring/{user_id}/webhook", 400),
        ("GET", "/monitoring/{user_id}/webhook", 200), ("GET", "/monitoring/{user_id}/webhook", 404),
        ("DELETE", "/monitoring/{user_id}/webhook", 200), ("DELETE", "/monitoring/{user_id}/webhook", 404),
    },
    "health": {("GET", "/health", 200), ("GET", "/health", 503)},
}
# Documented answers no test here provokes, and why.
UNCOVERED: dict[Answer, str] = {
    ("GET", "/health", 500): "an unexpected exception in the health view; the checks catch their own failures",
}
UNEXPECTED_ERROR = "an unexpected exception: one 500 (POST /predict) stands for every endpoint's"
THROTTLED = "the throttle answers the same way everywhere: one 429 (GET /models) stands for every endpoint's"


# --- the schema, made strict ------------------------------------------------------------


def strict(node: Any) -> Any:
    """Return a copy of the schema where objects that list properties allow no others."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {
        # A property map's keys are field names, not schema keywords.
        key: {name: strict(sub) for name, sub in value.items()} if key == "properties" else strict(value)
        for key, value in node.items()
    }
    if "properties" in copy and "additionalProperties" not in copy:
        copy["additionalProperties"] = False
    return copy


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield method.upper(), path, operation


def pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def template_of(path: str) -> str:
    """`/models/tenant-a/leads_lr` → `/models/{user_id}/{model_name}`, as the schema names it."""
    route = resolve(path).route
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def describe(error: ValidationError) -> str:
    # A oneOf / anyOf failure says only "not valid under any": the branch that got furthest says why.
    while error.context:
        error = max(error.context, key=lambda branch: (len(branch.absolute_path), branch.validator != "type"))
    return f"  at {error.json_path}: {error.message[:300]}"


class Contract:
    """Validates answers against their operation's schema for that status and records them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource(contents=strict(document), specification=DRAFT202012)
        self.registry: Registry = Registry().with_resource(SCHEMA_URI, resource)
        self.seen: set[Answer] = set()

    def check(self, response: Any, status: int) -> Any:
        body = response.json()
        method = response.request["REQUEST_METHOD"].upper()
        path = template_of(response.request["PATH_INFO"])
        assert response.status_code == status, (method, path, response.status_code, body)
        responses = self.document["paths"][path][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {path} answered {status}, which its schema does not list"
        reference = pointer("paths", path, method.lower(), "responses", str(status), "content", "application/json",
                            "schema")
        validator = Draft202012Validator(
            {"$ref": f"{SCHEMA_URI}#{reference}"}, registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
        assert not errors, f"{method} {path} {status}:\n" + "\n".join(map(describe, errors[:20]))
        self.seen.add((method, path, status))
        return body

    def assert_checked(self, expected: set[Answer]) -> None:
        assert self.seen == expected, {"not checked": expected - self.seen, "not listed": self.seen - expected}


@pytest.fixture
def contract(openapi: dict[str, Any]) -> Contract:
    return Contract(openapi)


def concrete(path: str, **values: str) -> str:
    """Fill a path template: the given values, else a tenant-a / lead_conversion / missing-id default."""
    defaults = {"user_id": TENANT, "model_type": "lead_conversion", "model_name": "leads_lr",
                "job_id": MISSING_ID, "dataset_id": MISSING_ID}
    return re.sub(r"\{(\w+)\}", lambda match: values.get(match[1], defaults[match[1]]), path)


def send(client: APIClient, method: str, path: str, body: Any = None) -> Any:
    return getattr(client, method.lower())(path, body, format="json")


# Derived from the schema: what the loops over every operation provoke.
def authenticated_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for method, path, operation in operations(document) if "401" in operation["responses"]}


def tenant_path_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for method, path, _ in operations(document) if "{user_id}" in path}


def model_type_path_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for method, path, _ in operations(document) if "{model_type}" in path}


def body_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for method, path, operation in operations(document) if "requestBody" in operation}


LOOPS: dict[int, Callable[[dict[str, Any]], set[tuple[str, str]]]] = {
    401: authenticated_operations,
    403: tenant_path_operations,
    400: model_type_path_operations,
    413: body_operations,
}


# --- the schema itself --------------------------------------------------------------------


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_operation_documents_a_typed_success_answer_and_its_errors(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        responses = operation["responses"]
        successes = [status for status in responses if status.startswith("2")]
        assert successes, (method, path)
        for status in successes:
            schema = resolved(openapi, responses[status]["content"]["application/json"]["schema"])
            # Not `dict` (an empty object) nor `{}`: fields, or a choice of typed shapes.
            assert schema.get("properties") or schema.get("oneOf"), (method, path, status, schema)
        errors = {status for status in responses if status[0] in "45"}
        expected = {"500"} if path == "/health" else {"401", "429", "500"}
        assert expected <= errors, (method, path, sorted(errors))
        for status in errors - {"503"}:
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }, (method, path, status)
    health = openapi["paths"]["/health"]["get"]["responses"]
    assert health["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/HealthResponse"}


def test_model_type_path_parameters_are_enums(openapi: dict[str, Any]) -> None:
    found = 0
    for method, path, operation in operations(openapi):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "model_type":
                assert sorted(parameter["schema"]["enum"]) == sorted(MODEL_TYPES), (method, path)
                found += 1
    assert found == len(model_type_path_operations(openapi)) > 0


def test_component_names_read_naturally(openapi: dict[str, Any]) -> None:
    names = set(openapi["components"]["schemas"])
    assert not [name for name in names if name.endswith("RequestRequest")]
    for method, path, operation in operations(openapi):
        for status, response in operation["responses"].items():
            name = response["content"]["application/json"]["schema"].get("$ref", "").rsplit("/", 1)[-1]
            assert name.endswith("Response"), (method, path, status, name)
        if "requestBody" in operation:
            for content in operation["requestBody"]["content"].values():
                name = content["schema"]["$ref"].rsplit("/", 1)[-1]
                assert name.endswith("Request") and not name.endswith("RequestRequest"), (method, path, name)
    assert {"PredictRequest", "PredictResponse", "PredictBatchResponse", "TrainResponse", "ErrorResponse"} <= names


def test_schema_generates_without_warnings_and_validates(tmp_path: Any) -> None:
    # --fail-on-warn turns any drf-spectacular warning (an unresolved field, a name collision) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


def test_every_documented_answer_is_covered_or_explained(openapi: dict[str, Any]) -> None:
    documented = {
        (method, path, int(status))
        for method, path, operation in operations(openapi)
        for status in operation["responses"]
    }
    covered = set().union(*COVERED.values()) | {
        (method, path, status) for status, operations_of in LOOPS.items() for method, path in operations_of(openapi)
    }
    assert covered <= documented, covered - documented
    explained = dict(UNCOVERED) | {
        answer: UNEXPECTED_ERROR for answer in documented if answer[2] == 500 and answer not in UNCOVERED
    } | {answer: THROTTLED for answer in documented if answer[2] == 429}
    missing = documented - covered - set(explained)
    assert not missing, sorted(missing)
    # Every success answer is validated, none merely explained away.
    assert not {answer for answer in documented if answer[2] < 300} - covered


# --- every operation ----------------------------------------------------------------------


def test_every_operation_refuses_a_request_without_a_token(
    contract: Contract, openapi: dict[str, Any], client_for: Callable[[str | None], APIClient]
) -> None:
    anonymous = client_for(None)
    for method, path in sorted(authenticated_operations(openapi)):
        contract.check(send(anonymous, method, concrete(path), {}), 401)
    contract.assert_checked({(method, path, 401) for method, path in authenticated_operations(openapi)})


def test_every_operation_for_a_user_id_refuses_another_tenants_token(contract: Contract, openapi: dict[str, Any],
                                                                     api: APIClient) -> None:
    for method, path in sorted(tenant_path_operations(openapi)):
        contract.check(send(api, method, concrete(path, user_id=OTHER_TENANT), {}), 403)
    contract.assert_checked({(method, path, 403) for method, path in tenant_path_operations(openapi)})


def test_every_model_type_path_refuses_an_unknown_model_type(contract: Contract, openapi: dict[str, Any],
                                                             api: APIClient) -> None:
    for method, path in sorted(model_type_path_operations(openapi)):
        body = contract.check(send(api, method, concrete(path, model_type="churn"), {}), 400)
        assert "model_type" in body["details"]
    contract.assert_checked({(method, path, 400) for method, path in model_type_path_operations(openapi)})


def test_every_operation_with_a_body_refuses_one_over_the_size_limit(
    contract: Contract, openapi: dict[str, Any], api: APIClient, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    for method, path in sorted(body_operations(openapi)):
        contract.check(send(api, method, concrete(path), {"user_id": TENANT, "padding": "x" * 200}), 413)
    contract.assert_checked({(method, path, 413) for method, path in body_operations(openapi)})


# --- each endpoint's answers ----------------------------------------------------------------


def test_predictions_and_insights_match_the_schema(
    contract: Contract, api: APIClient, client_for: Callable[[str | None], APIClient], service_key: str,
    lead_model: ModelVersion, clv_model: ModelVersion, monkeypatch: pytest.MonkeyPatch, settings: Any,
) -> None:
    lead = contract.check(api.post("/predict", lead_request(LEAD), format="json"), 200)
    assert lead["reasons"] and "log_odds" in lead["reasons"][0] and lead["model_info"]["model_name"] == "leads_lr"
    contract.check(api.post("/predict", clv_request(CUSTOMER), format="json"), 200)
    contract.check(api.post("/predict", lead_request(LEAD, explain=False), format="json"), 200)
    batch = contract.check(
        api.post("/predict/batch", lead_request([LEAD, {**LEAD, "id": "L2"}], explain=True), format="json"), 200
    )
    assert [item["lead_id"] for item in batch["predictions"]] == ["lead_0", "L2"]
    customers = contract.check(api.post("/predict/batch", clv_request([CUSTOMER], explain=True), format="json"), 200)
    assert customers["predictions"][0]["customer_id"] == "C1"

    # The rules fallback, for a tenant without models.
    crm = client_for(service_key)
    rules = {"user_id": "no-models"}
    assert contract.check(crm.post("/predict", lead_request(LEAD) | rules, format="json"), 200)["source"] == "rules"
    contract.check(crm.post("/predict", clv_request(CUSTOMER) | rules, format="json"), 200)
    contract.check(crm.post("/predict/batch", lead_request([LEAD]) | rules, format="json"), 200)
    contract.check(crm.post("/predict/batch", clv_request([CUSTOMER]) | rules, format="json"), 200)

    # A version without an explainer answers with the reason it has no reasons.
    with monkeypatch.context() as patched:
        patched.setattr(predictions.services, "explainer_for", lambda bundle: None)
        unexplained = contract.check(api.post("/predict", lead_request(LEAD), format="json"), 200)
    assert unexplained["explanation"]["method"] == "unavailable"

    contract.check(api.post("/predict", {"model_type": "lead_conversion"}, format="json"), 400)
    contract.check(api.post("/predict/batch", lead_request([{**LEAD, "lead_score": "high"}]), format="json"), 400)
    contract.check(api.post("/predict", lead_request(LEAD, user_id=OTHER_TENANT), format="json"), 403)
    contract.check(api.post("/predict/batch", lead_request([LEAD], user_id=OTHER_TENANT), format="json"), 403)
    contract.check(api.post("/predict", lead_request(LEAD, model_name="nope"), format="json"), 404)
    contract.check(api.post("/predict/batch", lead_request([LEAD], model_name="nope"), format="json"), 404)
    with monkeypatch.context() as patched:
        patched.setattr(settings, "LEADML_MAX_BATCH_ROWS", 1)
        contract.check(api.post("/predict/batch", lead_request([LEAD, LEAD]), format="json"), 413)
    with monkeypatch.context() as patched:
        def crash(**kwargs: Any) -> None:
            raise RuntimeError("boom")

        patched.setattr(predictions.apis, "predictions_make", crash)
        assert contract.check(api.post("/predict", lead_request(LEAD), format="json"), 500)["error"]

    insights = contract.check(api.get(f"/insights/{TENANT}/lead_conversion"), 200)
    assert insights["model_types"] == ["logistic_regression"] and insights["monitoring"]
    contract.check(api.get(f"/insights/{TENANT}/customer_lifetime_value"), 200)
    empty = contract.check(crm.get("/insights/no-models/lead_conversion"), 200)
    assert empty["success"] is False and empty["active_model"] is None
    contract.assert_checked(COVERED["predictions"])


def test_models_listing_activation_deletion_and_retrain_match_the_schema(
    contract: Contract, api: APIClient, lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    second_lead_model(lead_model)
    # A registry row with nothing but defaults: every optional and nullable figure is absent or null.
    model_version(TENANT, name="bare")
    listing = contract.check(api.get(f"/models/{TENANT}"), 200)
    assert listing["total_models"] == 3

    models = f"/models/{TENANT}"
    contract.check(api.post(f"{models}/second/activate", {"reason": "try it"}, format="json"), 200)
    contract.check(api.post(f"{models}/second/activate", {"reason": "again"}, format="json"), 409)
    contract.check(api.post(f"{models}/second/activate", {}, format="json"), 400)
    contract.check(api.post(f"{models}/second/activate", {"reason": "x", "version": 9}, format="json"), 404)

    contract.check(api.delete(f"{models}/second"), 409)
    contract.check(api.delete(f"{models}/bare?version=9"), 404)
    contract.check(api.delete(f"{models}/bare?version=abc"), 400)
    contract.check(api.delete(f"{models}/bare"), 200)

    contract.check(api.post(f"{models}/leads_lr/retrain", {"version": 0}, format="json"), 400)
    contract.check(api.post(f"{models}/nope/retrain", {}, format="json"), 404)
    retrain = contract.check(api.post(f"{models}/leads_lr/retrain", {"reason": "test"}, format="json"), 202)
    assert retrain["retrain_of"] == 1 and retrain["status"] == "queued"
    contract.check(api.post(f"{models}/leads_lr/retrain", {}, format="json"), 409)

    monkeypatch.setattr(ApiTokenRateThrottle, "rate", "1/min", raising=False)
    api.get(models)
    contract.check(api.get(models), 429)
    contract.assert_checked(COVERED["models"])


def test_datasets_training_jobs_and_preprocessing_match_the_schema(
    contract: Contract, api: APIClient, lead_rows: list[dict[str, Any]], settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    leads = {"user_id": TENANT, "model_type": "lead_conversion", "name": "crm", "target": "status",
             "positive_values": ["customer", "won"], "rows": lead_rows}
    dataset = contract.check(api.post("/datasets", leads, format="json"), 201)
    orders = {"user_id": TENANT, "model_type": "customer_lifetime_value", "name": "orders", "kind": "transactions",
              "rows": transaction_log(), "customer_column": "cust", "date_column": "day",
              "amount_column": "total", "calibration_end": "2024-09-30", "horizon_days": 180}
    transactions = contract.check(api.post("/datasets", orders, format="json"), 201)
    assert transactions["source_config"]["customers"] > 0
    contract.check(api.get(f"/datasets/{dataset['dataset_id']}"), 200)
    contract.check(api.get(f"/datasets/{MISSING_ID}"), 404)
    contract.check(api.post("/datasets", leads | {"rows": "not a list"}, format="json"), 400)
    contract.check(api.post("/datasets", leads | {"user_id": OTHER_TENANT}, format="json"), 403)

    train = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "lr",
             "user_id": TENANT, "training_config": {"cv_folds": 3, "param_grid": {"C": [1.0]}}}
    with django_capture_on_commit_callbacks(execute=True):
        accepted = contract.check(api.post("/train?async=true", train, format="json"), 202)
    assert accepted["status"] == "queued" and accepted["status_url"]
    job = contract.check(api.get(f"/jobs/{accepted['job_id']}"), 200)
    assert job["status"] == "succeeded" and job["result"]["metadata"]["best_params"]
    contract.check(api.get(f"/jobs/{MISSING_ID}"), 404)

    nested = contract.check(api.post("/train", train | {"training_config": {"features": [{}]}}, format="json"), 400)
    # Per-item errors are named by their path, with plain messages (no error objects in the text).
    assert nested["details"]["training_config.features[0]"] == ["Not a valid string."]
    assert nested["error"] == "training_config.features[0]: Not a valid string."
    contract.check(api.post("/train", train | {"algorithm": "magic"}, format="json"), 400)
    contract.check(api.post("/train", train | {"user_id": OTHER_TENANT}, format="json"), 403)
    contract.check(api.post("/train", train | {"training_config": {"dataset_id": MISSING_ID}}, format="json"), 404)
    model_version(TENANT, model_type="customer_lifetime_value", name="clv_name")
    contract.check(api.post("/train", train | {"model_name": "clv_name"}, format="json"), 409)

    queued = training_job(TENANT, algorithm="random_forest", model_name="c")
    contract.check(api.post(f"/jobs/{queued.pk}/cancel"), 200)
    contract.check(api.post(f"/jobs/{queued.pk}/cancel"), 409)
    contract.check(api.post(f"/jobs/{MISSING_ID}/cancel"), 404)

    records = [
        {"a": 1, "b": "x", "email": "a@b.com", "t": "yes"},
        {"a": 2, "b": "y", "email": "c@gmail.com", "t": "no"},
        {"a": 3, "b": "y", "email": "d@e.com", "t": "no"},
    ]
    contract.check(api.post("/preprocess", {"data": records[0]}, format="json"), 200)
    selected = contract.check(api.post("/preprocess", {"data": records, "config": {
        "target": "t", "feature_selection": "k_best", "k": 1}}, format="json"), 200)
    assert selected["feature_selection"]["kept"]
    contract.check(api.post("/preprocess", {"data": records, "config": {"colour": "blue"}}, format="json"), 400)
    contract.assert_checked(COVERED["training"])


@pytest.mark.django_db(transaction=True)
def test_train_waited_for_answers_in_the_original_shape_or_422(
    contract: Contract, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside a test transaction, so the job runs when its row commits and ?wait sees it finish.
    api = tenant_client(TENANT)
    dataset_with_rows(TENANT, "lead_conversion", lead_rows)
    train = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "sync",
             "user_id": TENANT, "training_config": {"cv_folds": 3, "param_grid": {"C": [1.0]}}}
    result = contract.check(api.post("/train?wait=120", train, format="json"), 200)
    assert result["model_path"] and result["metadata"]["feature_importance"] and result["metrics"]["roc_auc"]
    import training.services.run

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise DataError("every usable column was left out", field="training_config")

    monkeypatch.setattr(training.services.run, "train_model", failing)  # the job fails as it runs
    failed = contract.check(api.post("/train?wait=120", train | {"model_name": "sync2"}, format="json"), 422)
    job = contract.check(api.get(f"/jobs/{failed['details']['job_id'][0]}"), 200)
    assert job["status"] == "failed" and job["success"] is False and job["log"][-1]["error"]
    contract.assert_checked(COVERED["training_waited"])


@pytest.mark.django_db(transaction=True)
def test_train_and_retrain_answer_503_when_the_job_queue_is_down(
    contract: Contract, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside a test transaction, so the enqueue (and its failure) happens when the job row commits.
    api = tenant_client(TENANT)
    dataset_with_rows(TENANT, "lead_conversion", lead_rows)
    assert train_inline(TENANT, "lead_conversion", "logistic_regression", "leads_lr", reuse=True).status == "succeeded"
    broker_down(monkeypatch)
    train = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "m", "user_id": TENANT}
    response = api.post("/train", train, format="json")
    assert contract.check(response, 503)["details"] == {"job_queue": ["unavailable"]}
    assert response["Retry-After"] == "30"
    retrain = api.post(f"/models/{TENANT}/leads_lr/retrain", {}, format="json")
    contract.check(retrain, 503)
    assert retrain["Retry-After"] == "30"
    contract.assert_checked(COVERED["queue_down"])


def test_outcomes_monitoring_triggers_and_webhooks_match_the_schema(
    contract: Contract, api: APIClient, lead_model: ModelVersion, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post("/predict/batch", lead_request([{**LEAD, "id": f"L{index}"} for index in range(3)]), format="json")
    outcomes = {"user_id": TENANT, "model_type": "lead_conversion",
                "outcomes": [{"entity_id": "L1", "outcome": "won"}, {"entity_id": "L9", "outcome": "won"}]}
    recorded = contract.check(api.post("/outcomes", outcomes, format="json"), 200)
    assert recorded["stored"] == 1 and recorded["rejected"][0]["index"] == 1
    contract.check(api.post("/outcomes", outcomes | {"outcomes": []}, format="json"), 400)
    contract.check(api.post("/outcomes", outcomes | {"user_id": OTHER_TENANT}, format="json"), 403)

    monitoring = f"/monitoring/{TENANT}/lead_conversion"
    report = contract.check(api.get(monitoring), 200)
    assert report["window"]["with_outcomes"] == 1 and report["performance"]["estimated"]
    quiet = contract.check(api.get(monitoring, {"since": "2001-01-01T00:00:00Z", "until": "2001-01-02T00:00:00Z"}), 200)
    assert quiet["data_drift"]["unavailable"]
    contract.check(api.get(monitoring, {"last": 2}), 200)
    contract.check(api.get(monitoring, {"last": 2, "since": "2001-01-01T00:00:00Z"}), 400)
    contract.check(api.get(f"/monitoring/{TENANT}/customer_lifetime_value"), 404)

    contract.check(api.get(f"{monitoring}/events"), 200)
    contract.check(api.get(f"{monitoring}/events", {"kind": "promotion", "limit": 5}), 200)
    contract.check(api.get(f"{monitoring}/events", {"kind": "party"}), 400)

    contract.check(api.get(f"{monitoring}/triggers"), 200)
    changed = contract.check(api.put(f"{monitoring}/triggers", {"max_age_days": 30}, format="json"), 200)
    assert changed["overrides"] == {"max_age_days": 30}
    contract.check(api.patch(f"{monitoring}/triggers", {"max_age_days": None}, format="json"), 200)
    contract.check(api.put(f"{monitoring}/triggers", {"colour": 1}, format="json"), 400)

    webhook = f"/monitoring/{TENANT}/webhook"
    contract.check(api.get(webhook), 404)
    contract.check(api.put(webhook, {"url": "http://127.0.0.1:9/hook"}, format="json"), 400)
    assert contract.check(api.put(webhook, {"url": "https://example.com/hook"}, format="json"), 200)["secret"]
    contract.check(api.get(webhook), 200)
    contract.check(api.delete(webhook), 200)
    contract.check(api.delete(webhook), 404)
    contract.assert_checked(COVERED["monitoring"])


def test_health_answers_match_the_schema(
    contract: Contract, db: None, client_for: Callable[[str | None], APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    anonymous = client_for(None)
    assert contract.check(anonymous.get("/health"), 200)["services"]["database"] == "available"
    monkeypatch.setattr(leadml.health, "_check_model_storage", lambda: {"status": "down", "error": "OSError"})
    assert contract.check(anonymous.get("/health"), 503)["status"] == "unhealthy"
    contract.assert_checked(COVERED["health"])
