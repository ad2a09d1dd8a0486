"""The HTTP kernel every app's API shares: errors, fields, records, parsing and rendering,
token authentication and tenant checks, the throttle, the OpenAPI pieces, TimeStampedModel.

It imports Django, DRF and `leadml.ml` only, never an app: the token store it
authenticates against is registry's (registry/tokens.py subclasses its authentication).
"""
