// The fields the CRM reads from leadml, against the types generated from its OpenAPI
// schema. Nothing runs: tests/contract/test_typescript_client.py generates
// leadml-api.d.ts next to a copy of this file and type-checks it with `tsc --strict`,
// so a field the schema drops, renames or retypes fails the build here first.
//
// By hand, from this folder, with the service running:
//   npx openapi-typescript 'http://127.0.0.1:8001/api/schema/?format=json' --default-non-nullable=false -o leadml-api.d.ts
//   npx tsc --noEmit --strict --target es2022 --module esnext --moduleResolution bundler crm.ts
import type { components, paths } from "./leadml-api";

type Schemas = components["schemas"];
type Json<Path extends keyof paths, Method extends keyof paths[Path], Status extends number> =
  paths[Path][Method] extends { responses: { [S in Status]: { content: { "application/json": infer Body } } } }
    ? Body
    : never;

// --- POST /predict ------------------------------------------------------------------

export const leadRequest: Schemas["PredictRequest"] = {
  model_type: "lead_conversion",
  user_id: "demo",
  data: { email: "user@company.com", job_title: "CEO", lead_score: 85 },
};

export function readPrediction(p: Json<"/predict", "post", 200>): string {
  const success: boolean = p.success;
  const type: "lead_conversion" | "customer_lifetime_value" = p.prediction_type;
  const probability: number | null = p.conversion_probability;
  const value: number | null = p.lifetime_value;
  const confidence: number = p.confidence;
  const detail: { value: number; method: string } = p.confidence_detail;
  const predictionClass: "high" | "medium" | "low" | null = p.prediction_class;
  const category: "high_value" | "medium_value" | "low_value" | "very_low_value" | null = p.value_category;
  const topFeatures: [string, number][] = p.feature_importance.top_features;
  const [topName, topWeight] = topFeatures[0];
  const featureCount: number = p.feature_importance.feature_count;
  const explanationMethod: string = p.feature_importance.explanation_method;
  const modelPath: string | null = p.model_info.model_path;
  const algorithm: string = p.model_info.algorithm;
  const trainingDate: string | null = p.model_info.training_date;
  const modelName: string | undefined = p.model_info.model_name;
  const error: string | null = p.error;
  const predictionId: number = p.prediction_id;
  const modelVersion: number | null = p.model_version;
  const source: "model" | "rules" = p.source;
  const score: number | null = p.score;
  const tier: "A" | "B" | "C" | "D" | null = p.tier;
  const warnings: string[] = p.warnings;
  const reasons = (p.reasons ?? []).map(
    (reason) => `${reason.feature}: ${reason.contribution.toFixed(1)} (${reason.description})`,
  );
  const unit: string | undefined = p.explanation?.unit;
  const baseline: number | undefined = p.explanation?.baseline;
  const fallback: string | undefined = p.fallback_reason;
  return [
    success, type, probability, value, confidence, detail.value, detail.method, predictionClass, category,
    topName, topWeight, featureCount, explanationMethod, modelPath, algorithm, trainingDate, modelName, error,
    predictionId, modelVersion, source, score, tier, warnings.join("; "), reasons.join("; "), unit, baseline,
    fallback,
  ].join(" ");
}

// --- POST /predict/batch ----------------------------------------------------------------

export const batchRequest: Schemas["PredictBatchRequest"] = {
  model_type: "lead_conversion",
  user_id: "demo",
  model_name: "my_lr_model",
  data: [{ id: "L1", email: "user1@company.com" }, { id: "L2", email: "someone@gmail.com" }],
};

export function readBatch(batch: Schemas["PredictBatchResponse"]): string[] {
  const type: string = batch.prediction_type;
  const total: number = batch.total_predictions;
  const algorithm: string = batch.model_info.algorithm;
  const rows: string[] = [];
  for (let i = 0; i < batch.predictions.length; i++) {
    const item = batch.predictions[i];
    const shared = `${item.confidence} ${item.confidence_detail.method} ${item.prediction_id} ${item.score} ${item.tier} ${item.source} ${item.warnings.length} ${(item.reasons ?? []).length}`;
    // A batch holds one model type's answers: leads carry lead_id, customers customer_id.
    if ("lead_id" in item) {
      const id: string = item.lead_id;
      const probability: number = item.conversion_probability;
      const predictionClass: "high" | "medium" | "low" = item.prediction_class;
      rows.push(`${id} ${probability} ${predictionClass} ${shared}`);
    } else {
      const id: string = item.customer_id;
      const value: number = item.lifetime_value;
      const category: "high_value" | "medium_value" | "low_value" | "very_low_value" = item.value_category;
      rows.push(`${id} ${value} ${category} ${shared}`);
    }
  }
  return [type, String(total), algorithm, String(batch.model_version), batch.source, ...rows];
}

// --- POST /train ------------------------------------------------------------------------

export const trainRequest: Schemas["TrainRequest"] = {
  model_type: "lead_conversion",
  algorithm: "random_forest",
  model_name: "my_lead_model",
  user_id: "demo",
  training_config: { preprocessing: { missing_value_strategy: "median" } },
};

export function readTraining(
  trained: Json<"/train", "post", 200>,
  accepted: Json<"/train", "post", 202>,
  job: Json<"/jobs/{job_id}", "get", 200>,
): string {
  const success: boolean = trained.success;
  const modelPath: string = trained.model_path;
  const bestParams: { [name: string]: unknown } = trained.metadata.best_params;
  const importance: { [feature: string]: number } = trained.metadata.feature_importance;
  const samples: number | null = trained.metadata.training_samples;
  const testSamples: number | null = trained.metadata.test_samples;
  const features: string[] = trained.metadata.features;
  const modelClass: string | null = trained.metadata.model_class;
  const figures: number | null | undefined = trained.metadata.metrics.roc_auc;
  const metrics = trained.metrics;
  const lead = [metrics.accuracy, metrics.precision, metrics.recall, metrics.f1_score, metrics.roc_auc];
  const clv = [metrics.mean_squared_error, metrics.mean_absolute_error, metrics.r2_score, metrics.root_mean_squared_error];
  const jobId: string = trained.job_id;
  const statusUrl: string = trained.status_url;
  const version: number = trained.model_version;
  const status: "active" | "candidate" | "archived" | "broken" = trained.status;
  const queued: "queued" | "running" | "succeeded" | "failed" | "cancelled" = accepted.status;
  const percent: number = job.progress.percent;
  const result: string | undefined = job.result?.model_path;
  return [
    success, modelPath, JSON.stringify(bestParams), Object.keys(importance).join(","), samples, testSamples,
    features.length, modelClass, figures, lead.join(","), clv.join(","), jobId, statusUrl, version, status,
    accepted.job_id, accepted.status_url, queued, percent, job.error, result,
  ].join(" ");
}

// --- GET /models/{user_id} ---------------------------------------------------------------

export function readModels(listing: Json<"/models/{user_id}", "get", 200>): string[] {
  const total: number = listing.total_models;
  const rows = listing.models.map((model) => {
    const path: string = model.model_path;
    const size: number = model.file_size;
    const active: boolean = model.is_active;
    const auc: number | null | undefined = model.metrics.roc_auc;
    return `${listing.user_id} ${model.model_name} v${model.version} ${path} ${size} ${active} ${auc} ${model.metadata.algorithm}`;
  });
  const history = Object.entries(listing.promotion_history).map(
    ([type, events]) => `${type}: ${events.map((event) => `${event.from_version}->${event.to_version} by ${event.actor}`)}`,
  );
  return [String(listing.success), String(total), ...rows, ...history];
}

// --- GET /insights/{user_id}/{model_type} ------------------------------------------------

export function readInsights(insights: Schemas["InsightsResponse"]): string {
  const total: number = insights.total_models;
  const algorithms: string[] = insights.model_types;
  const performance = Object.entries(insights.avg_performance).map(
    ([metric, summary]) => `${metric} ${summary.mean}±${summary.std} [${summary.min}, ${summary.max}]`,
  );
  const trends = Object.entries(insights.feature_importance_trends).map(
    ([feature, points]) => `${feature}: ${points.map((point) => point.importance).join(",")}`,
  );
  const patterns = insights.prediction_patterns;
  const rulesShare: number | null = patterns.rules_share;
  const active = insights.active_model;
  const tiers: number | undefined = active?.tier_thresholds?.A;
  const drifting: string[] = insights.monitoring?.data_drift.drifted_features ?? [];
  const noModels: string | undefined = insights.error;
  return [
    total, algorithms.join(","), performance.join("; "), trends.join("; "), patterns.total_predictions,
    JSON.stringify(patterns.by_source), rulesShare, patterns.per_day.length, patterns.score_distribution.length,
    active?.metrics.roc_auc, tiers, drifting.join(","), insights.monitoring?.fired_triggers.length, noModels,
  ].join(" ");
}

// --- GET /health -------------------------------------------------------------------------

export function readHealth(health: Json<"/health", "get", 200>, degraded: Json<"/health", "get", 503>): string {
  const services: { [name: string]: "available" | "unavailable" } = health.services;
  const database: "up" | "down" = health.checks.database.status;
  return `${health.status} ${health.timestamp} ${health.version} ${services.database} ${database} ${degraded.status}`;
}

// --- any error ------------------------------------------------------------------------------

export function readError(error: Json<"/predict", "post", 400> | Schemas["ErrorResponse"]): string {
  const messages = Object.entries(error.details).map(
    ([field, problems]) => `${field}: ${Array.isArray(problems) ? problems.join(", ") : JSON.stringify(problems)}`,
  );
  return `${error.success} ${error.error} ${error.detail} ${messages.join("; ")}`;
}
