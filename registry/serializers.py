"""What registry/presenters.py builds, described for the OpenAPI schema (see leadml/api/serializers.py)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leadml.api.fields import ModelTypeField
from leadml.api.serializers import (
    DroppedColumnSerializer,
    FeatureEngineeringReportSerializer,
    FeatureWeightListField,
    PreprocessingOptionsSerializer,
)
from registry.models import ModelVersion


def _figure(help_text: str = "") -> serializers.FloatField:
    # Every figure is null where it is undefined (one class in the test rows, no finite value).
    return serializers.FloatField(required=False, allow_null=True, help_text=help_text)


class MetricFiguresSerializer(serializers.Serializer):
    """Held-out test metrics (lead models: classification; CLV models: regression), ours and the original's names."""

    # Lead conversion.
    accuracy = _figure()
    precision = _figure()
    recall = _figure()
    f1 = _figure()
    f1_score = _figure("the original service's name for f1")
    roc_auc = _figure()
    pr_auc = _figure()
    log_loss = _figure()
    brier = _figure()
    brier_uncalibrated = _figure("Brier score before calibration")
    threshold = _figure("probability cut-off of the counts (0.5)")
    positive_rate = _figure()
    # Customer lifetime value.
    mse = _figure()
    mean_squared_error = _figure("the original service's name for mse")
    rmse = _figure()
    root_mean_squared_error = _figure("the original service's name for rmse")
    mae = _figure()
    mean_absolute_error = _figure("the original service's name for mae")
    r2 = _figure()
    r2_score = _figure("the original service's name for r2")
    mape = _figure()
    spearman = _figure()
    top_decile_capture = _figure()
    test_rows = serializers.IntegerField(required=False)


class CalibrationPointSerializer(serializers.Serializer):
    mean_predicted = serializers.FloatField(allow_null=True)
    fraction_positive = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()


class RocPointSerializer(serializers.Serializer):
    fpr = serializers.FloatField(allow_null=True)
    tpr = serializers.FloatField(allow_null=True)


class HistogramBinSerializer(serializers.Serializer):
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()


@extend_schema_field(
    {
        "type": "array",
        "prefixItems": [{"type": ["number", "null"]}, {"type": ["number", "null"]}],
        "minItems": 2,
        "maxItems": 2,
        "description": "[predicted, actual]",
    }
)
class PredictedActualField(serializers.ListField):
    pass


class ModelMetricsSerializer(MetricFiguresSerializer):
    """The figures plus the curves and histograms behind the model card's charts."""

    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        required=False,
        help_text="[[true negatives, false positives], [false negatives, true positives]]",
    )
    calibration_curve = CalibrationPointSerializer(many=True, required=False)
    roc_curve = RocPointSerializer(many=True, required=False)
    score_histogram = HistogramBinSerializer(many=True, required=False)
    predicted_vs_actual = serializers.ListField(
        child=PredictedActualField(), required=False, help_text="a sample of held-out rows (CLV)"
    )


class CrossValidationSerializer(serializers.Serializer):
    # Empty on versions registered without a search.
    metric = serializers.CharField(required=False)
    mean = serializers.FloatField(required=False)
    std = serializers.FloatField(required=False)
    folds = serializers.IntegerField(required=False)


class CalibrationSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="none, sigmoid or isotonic")
    chosen_by = serializers.CharField(required=False)
    cv_log_loss = serializers.DictField(
        child=serializers.FloatField(), required=False, help_text="method → CV log-loss on the training rows"
    )
    rejected = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="methods refused for costing held-out ROC-AUC"
    )
    fitted_on = serializers.CharField()
    brier_before = serializers.FloatField()
    brier_after = serializers.FloatField()
    log_loss_before = serializers.FloatField()
    log_loss_after = serializers.FloatField()
    roc_auc_before = serializers.FloatField(allow_null=True, required=False)
    roc_auc_after = serializers.FloatField(allow_null=True, required=False)


class PromotionDecisionSerializer(serializers.Serializer):
    promote = serializers.BooleanField()
    reason = serializers.CharField()
    metric = serializers.CharField()
    min_improvement = serializers.FloatField()
    challenger_score = serializers.FloatField(allow_null=True)
    champion_score = serializers.FloatField(allow_null=True)
    champion_version = serializers.IntegerField(allow_null=True)
    rows = serializers.IntegerField()
    rows_note = serializers.CharField(allow_blank=True)
    leakage_note = serializers.CharField(
        allow_blank=True, required=False, help_text="the active version read columns this one excluded as leakage"
    )
    champion_score_without_suspects = serializers.FloatField(
        allow_null=True, required=False, help_text="the active version on the same rows with those columns blanked"
    )


class TrainingCandidateSerializer(serializers.Serializer):
    """One algorithm the search tried (`auto` tries several), or skipped past the time budget."""

    algorithm = serializers.CharField()
    skipped = serializers.CharField(required=False, help_text="why it was not tried")
    cv_mean = serializers.FloatField(required=False)
    cv_std = serializers.FloatField(required=False)
    cv_mae = serializers.FloatField(required=False, help_text="CLV: cross-validated MAE, the tie-breaker")
    best_params = serializers.DictField(required=False)
    fits = serializers.IntegerField(required=False)
    seconds = serializers.FloatField(required=False)
    test_roc_auc = serializers.FloatField(required=False)
    test_r2 = serializers.FloatField(required=False)


class LeakageExclusionSerializer(serializers.Serializer):
    column = serializers.CharField()
    reason = serializers.CharField()


class ModelMetadataSerializer(serializers.Serializer):
    """The original service's `metadata` block first, then the registry's facts."""

    training_samples = serializers.IntegerField(allow_null=True)
    test_samples = serializers.IntegerField(allow_null=True)
    features = serializers.ListField(child=serializers.CharField(), help_text="the input columns the model reads")
    feature_importance = serializers.DictField(child=serializers.FloatField(), help_text="input column → weight")
    model_class = serializers.CharField(allow_null=True, help_text="the estimator's class, e.g. LogisticRegression")
    metrics = MetricFiguresSerializer()
    best_params = serializers.DictField(help_text="the hyperparameters the search chose")
    model_type = ModelTypeField()
    algorithm = serializers.CharField()
    model_name = serializers.CharField()
    user_id = serializers.CharField()
    version = serializers.IntegerField()
    training_date = serializers.DateTimeField()
    cross_validation = CrossValidationSerializer()
    feature_names = serializers.ListField(child=serializers.CharField())
    dropped_columns = DroppedColumnSerializer(many=True)
    feature_importance_ranked = FeatureWeightListField()
    explanation_method = serializers.CharField(allow_blank=True)
    training_rows = serializers.IntegerField(allow_null=True)
    test_rows = serializers.IntegerField(allow_null=True)
    estimator = serializers.CharField(allow_null=True)
    candidates = TrainingCandidateSerializer(many=True)
    preprocessing = PreprocessingOptionsSerializer()
    feature_engineering = FeatureEngineeringReportSerializer(allow_null=True)
    leakage_excluded = LeakageExclusionSerializer(many=True)
    calibration = CalibrationSerializer(allow_null=True, help_text="lead models with calibrate=true")
    promotion = PromotionDecisionSerializer(allow_null=True)


class MainMetricSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="roc_auc (leads) or r2 (CLV)")
    value = serializers.FloatField(allow_null=True)


class ModelVersionSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_name = serializers.CharField()
    version = serializers.IntegerField()
    model_type = ModelTypeField()
    algorithm = serializers.CharField()
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices)
    is_active = serializers.BooleanField()
    model_path = serializers.CharField()
    file_size = serializers.IntegerField(help_text="artifact size in bytes")
    sha256 = serializers.CharField()
    main_metric = MainMetricSerializer()
    metrics = ModelMetricsSerializer()
    metadata = ModelMetadataSerializer()
    created_at = serializers.DateTimeField()


class PromotionEventSerializer(serializers.Serializer):
    from_version = serializers.IntegerField(allow_null=True)
    from_model_name = serializers.CharField(allow_null=True)
    to_version = serializers.IntegerField(allow_null=True)
    to_model_name = serializers.CharField(allow_null=True)
    actor = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()
