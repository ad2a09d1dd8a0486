"""Monitoring over HTTP: outcomes, reports and insights, events and webhooks, retraining. Views validate, call one service, serialize."""
